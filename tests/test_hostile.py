"""The hostile-input suite: a few hundred broken and odd files through the real CLI.

A corpus built from a seed (tests/hostile/corpus.py: every format, truncations, byte
flips, bad lengths, duplicated segments and chunks, hostile XMP, odd names, FIFOs,
read-only files and folders, zero-byte files, non-images) goes through
``photocap index --write-metadata``, ``photocap write``, ``photocap read`` and
``photocap watch``, each in a real process. For every file: no traceback, no hang
(a bound on the time between two output lines, one per file), a reason for every
failure, every file photocap did not write byte-identical, and every file it wrote
decoding to the same pixels with every earlier tag still there (exiftool).

Bounded by default (one seed, about 300 files); ``PHOTOCAP_HOSTILE_LONG=1`` runs
four seeds at four times the damage per format.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostile import check, corpus
from photocap.index.store import CaptionIndex
from photocap.records import PhotoUpdate

LONG = os.environ.get("PHOTOCAP_HOSTILE_LONG") == "1"
SEEDS = [0, 1, 2, 3] if LONG else [0]
PER_FORMAT = 160 if LONG else 40
PER_FILE_S = 60.0  # longest silence allowed between two files' output lines (2 shared cores)
CAPTION = "a hostile test caption ☕"

pytestmark = pytest.mark.slow


def photocap(*args: str) -> list[str]:
    return [sys.executable, "-c", "from photocap.cli import cli; cli(prog_name='photocap')", *args]


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PHOTOCAP_MODEL", None)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _json(lines: list[str]) -> list[dict]:
    rows = []
    for line in lines:
        row = json.loads(line)  # every stdout line of --json is one object
        assert isinstance(row, dict)
        rows.append(row)
    return rows


def _clean(run: check.Run, what: str) -> None:
    assert not run.timed_out, f"{what} hung: no output for {PER_FILE_S} s (longest gap {run.longest_gap_s:.1f} s)"
    assert "Traceback" not in run.stderr, f"{what} printed a traceback:\n{run.stderr[-4000:]}"


def _total_s(n: int) -> float:
    return 120 + 5 * n


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    """seed -> snapshot of a pristine corpus, by path relative to its root (taken once: exiftool is slow)."""
    found: dict[int, dict[Path, check.Snap]] = {}

    def get(seed: int) -> dict[Path, check.Snap]:
        if seed not in found:
            root = tmp_path_factory.mktemp(f"pristine{seed}") / "corpus"
            cases = corpus.build(root, seed=seed, per_format=PER_FORMAT)
            found[seed] = {p.relative_to(root): s for p, s in check.snapshot([c.path for c in cases]).items()}
            corpus.unlock(root)
        return found[seed]

    return get


@pytest.fixture(params=SEEDS, ids=lambda s: f"seed{s}")
def built(request, tmp_path, snapshots):
    """(root, cases, snapshot before any run): a fresh corpus for one seed, unlocked afterwards."""
    root = tmp_path / "corpus"
    cases = corpus.build(root, seed=request.param, per_format=PER_FORMAT)
    before = {root / rel: snap for rel, snap in snapshots(request.param).items()}
    assert all(check.sha256(p) == snap.sha for p, snap in before.items())  # the seed fixes every byte
    yield root, cases, before
    corpus.unlock(root)


def _accounted_for(row: dict) -> bool:
    """A `write --json` outcome: written (into the photo or a sidecar), or skipped or failed with a reason."""
    if row["event"] == "written":
        return row.get("target") in ("embed", "sidecar")
    return row["event"] in ("skipped", "failed") and bool((row.get("reason") or "").strip())


def _embedded_by_photocap(read_rows: list[dict]) -> set[Path]:
    return {Path(r["path"]) for r in read_rows
            if "error" not in r and r.get("written_by_photocap") and r.get("caption_location") == "embedded"}


def _read_everything(root: Path, cases: list[corpus.Case]) -> list[dict]:
    run = check.run_streaming(photocap("read", str(root), "--json"), per_line_s=PER_FILE_S,
                              total_s=_total_s(len(cases)), env=_env())
    _clean(run, "photocap read")
    rows = _json(run.lines)
    for row in rows:
        assert row.get("error") or "caption" in row, row
    seen = {Path(r["path"]) for r in rows}
    for case in cases:  # every file (FIFOs, dangling links, read-only ones too) gets an answer
        assert case.path in seen, f"photocap read said nothing about {case.path!s} ({case.what})"
    assert run.rc == 0
    return rows


def test_index_write_metadata_then_write_and_read(built, tiny_model_path, tmp_path):
    root, cases, before = built
    db = tmp_path / "index.db"
    t0 = time.monotonic()
    run = check.run_streaming(
        photocap("index", str(root), "--write-metadata", "--json", "--db", str(db), "--model",
                 str(tiny_model_path), "--device", "cpu", "--workers", "1"),
        per_line_s=PER_FILE_S, total_s=_total_s(len(cases)), env=_env(),
    )
    _clean(run, "photocap index --write-metadata")
    assert run.rc == 0, run.stderr[-2000:]
    events = _json(run.lines)
    summary = events[-1]
    assert summary["event"] == "summary" and not summary["stopped"]
    for failure in summary["failures"] + summary["write_failures"]:
        assert failure["reason"].strip(), failure
    with CaptionIndex.open(db) as idx:
        records = {Path(r.path): r for r in idx.iter_photos()}
    photos = [c for c in cases if check.regular(c.path)]
    for case in photos:  # every regular file is captioned or failed with a reason
        record = records.get(case.path)
        assert record is not None, f"not indexed: {case.path!s} ({case.what})"
        assert record.caption or (record.error or "").strip(), f"no caption, no reason: {case.path!s}"
    for case in photos:  # a person's description, in any packet, is kept as theirs
        if case.what.startswith("two XMP packets, a person's"):
            assert records[case.path].caption == corpus.PERSON and records[case.path].source == "user"

    write = check.run_streaming(photocap("write", str(root), "--json", "--db", str(db)),
                                per_line_s=PER_FILE_S, total_s=_total_s(len(cases)), env=_env())
    _clean(write, "photocap write")
    reports = _json(write.lines)
    assert {Path(r["path"]) for r in reports} >= {p for p, r in records.items()}
    for report in reports:
        assert _accounted_for(report), report
    rows = _read_everything(root, cases)
    problems = check.compare(before, _embedded_by_photocap(rows))
    assert not problems, "\n".join(problems[:30])
    assert not check.leftovers(root)
    print(f"\nhostile seed corpus: {len(cases)} files, index+write+read {time.monotonic() - t0:.0f} s, "
          f"{summary['captioned']} captioned, {summary['failed']} failed, {summary['written']} written")


def test_write_fresh(built, tmp_path):
    """`photocap write` on files it has never written, with every file in the index (no model)."""
    root, cases, before = built
    db = tmp_path / "index.db"
    with CaptionIndex.open(db) as idx:
        idx.upsert_photos(
            PhotoUpdate(str(c.path), c.path.stat().st_size, c.path.stat().st_mtime_ns, caption=CAPTION,
                        source="model", model="hostile", score=0.0)
            for c in cases if check.regular(c.path)
        )
    write = check.run_streaming(photocap("write", str(root), "--json", "--db", str(db)),
                                per_line_s=PER_FILE_S, total_s=_total_s(len(cases)), env=_env())
    _clean(write, "photocap write")
    assert write.rc == 0
    reports = _json(write.lines)
    assert len(reports) == sum(check.regular(c.path) for c in cases)
    for report in reports:
        assert _accounted_for(report), report
    rows = _read_everything(root, cases)
    problems = check.compare(before, _embedded_by_photocap(rows))
    assert not problems, "\n".join(problems[:30])
    assert not check.leftovers(root)
    by_path = {Path(r["path"]): r for r in reports}
    collapsed = [c.path for c in cases if c.what in ("two XMP packets, disjoint properties",
                                                     "two identical XMP packets")]
    tags = check.exiftool_tags(collapsed)
    for path in collapsed:  # duplicate packets collapse into one, with one description
        assert by_path[path].get("target") == "embed", by_path[path]
        if tags:
            assert tags[path].get("XMP-dc:Description") == CAPTION, tags[path]
            assert tags[path].get("XMP-dc:Creator") == "Ana Núñez"
    # issue 31: a corrupt x:xmpmeta namespace is put right (exiftool reads the caption), a packet
    # with no room for the caption in its JPEG segment sends it to a sidecar (--target auto)
    corrupt = [c for c in cases if c.what == "XMP: corrupt-xmpmeta-namespace"]
    full = [c for c in cases if c.what == "XMP: over-jpeg-limit-with-a-caption" and c.format == "jpeg"]
    assert corrupt and full
    where = {c.path: Path(by_path[c.path].get("written_path") or c.path) for c in corrupt + full}
    tags = check.exiftool_tags(list(where.values()))
    for case in corrupt + full:
        report = by_path[case.path]
        assert report["event"] == "written", report
        assert report["target"] == ("sidecar" if case in full else "embed"), report
        if tags:
            assert tags[where[case.path]].get("XMP-dc:Description") == CAPTION, (case.what, tags[where[case.path]])
    written = sum(1 for r in reports if r["event"] == "written" and r.get("target") == "embed")
    print(f"\nhostile write: {len(reports)} files, {written} embedded")


def test_watcher(built, tiny_model_path, tmp_path):
    """Files of every kind dropped into a watched folder: each is captioned or fails with a reason."""
    root, cases, before = built
    watched = tmp_path / "watched"
    watched.mkdir()
    pick = [c for i, c in enumerate(cases) if check.regular(c.path) and (i % 3 == 0 or c.format == "other")]
    db = tmp_path / "index.db"
    expected: set[str] = set()
    copies: dict[Path, corpus.Case] = {}

    def done(lines: list[str]) -> bool:
        rows = [json.loads(x) for x in lines if x.startswith("{")]
        if not any(r["event"] == "caught_up" for r in rows):
            return False
        if not expected:  # caught up: now drop the files in
            for i, case in enumerate(pick):
                dest = watched / f"{i:03d}-{case.path.name}"
                shutil.copyfile(case.path, dest)
                expected.add(str(dest))
                copies[dest] = case
            os.mkfifo(watched / "pipe.jpg")
            return False
        seen = {r.get("path") for r in rows if r["event"] in ("captioned", "failed", "skipped")}
        return expected <= seen

    run = check.run_streaming(
        photocap("watch", str(watched), "--json", "--write-metadata", "--settle", "0.3", "--db", str(db),
                 "--model", str(tiny_model_path), "--device", "cpu", "--workers", "1"),
        per_line_s=PER_FILE_S, total_s=_total_s(len(pick)), env=_env(), stop_when=done,
    )
    _clean(run, "photocap watch")
    rows = _json(run.lines)
    assert rows[-1]["event"] == "stopped", rows[-3:]
    seen = {r.get("path") for r in rows if r["event"] in ("captioned", "failed", "skipped")}
    assert expected and expected <= seen, sorted(expected - seen)[:10]
    for row in rows:
        if row["event"] in ("failed", "skipped", "error"):
            assert (row.get("reason") or "").strip(), row
    assert not check.leftovers(watched)
    mapped = [corpus.Case(dest, c.format, c.what) for dest, c in copies.items()]
    rows = _read_everything(watched, mapped)
    problems = check.compare({dest: before[c.path] for dest, c in copies.items()}, _embedded_by_photocap(rows))
    assert not problems, "\n".join(problems[:30])


# --- queries and model files ------------------------------------------------------------------


def test_replaced_photo_and_newline_path(tiny_model_path, tmp_path, sample_photos):
    """Issue 31 through real processes: a photo replaced after it was captioned never gets the old
    photo's caption (exiftool checks the file), and a path with a newline comes out of
    ``search --print0`` exactly as it is on disk."""
    folder, db = tmp_path / "d", str(tmp_path / "x.db")
    folder.mkdir()
    photo = folder / "a\nb.jpg"  # a newline in its name too
    shutil.copyfile(sample_photos["astronaut.jpg"], photo)
    model = ("--model", str(tiny_model_path), "--device", "cpu", "--workers", "0")
    first = subprocess.run(photocap("index", str(folder), "--db", db, "--json", *model), capture_output=True,
                           text=True, env=_env(), timeout=600)
    assert first.returncode == 0 and "Traceback" not in first.stderr, first.stderr[-2000:]
    with CaptionIndex.open(db) as idx:
        old_caption = idx.get(str(photo)).caption
    found = subprocess.run(photocap("search", *old_caption.split()[-2:], "--mode", "words", "--db", db,
                                    "--print0"), capture_output=True, env=_env(), timeout=600)
    assert found.stdout == os.fsencode(photo) + b"\0", found
    shutil.copyfile(sample_photos["chelsea.jpg"], photo)  # another photo under the same name
    write = subprocess.run(photocap("write", str(folder), "--db", db, "--json"), capture_output=True, text=True,
                           env=_env(), timeout=600)
    assert write.returncode == 0 and "Traceback" not in write.stderr
    assert [(r["event"], r["skip"]) for r in _json(write.stdout.splitlines())] == [("skipped", "photo_changed")]
    tags = check.exiftool_tags([photo])
    if tags:
        assert "XMP-dc:Description" not in tags[photo]
    again = subprocess.run(photocap("index", str(folder), "--db", db, "--json", "--write-metadata", *model),
                           capture_output=True, text=True, env=_env(), timeout=600)
    events = _json(again.stdout.splitlines())
    assert [e["event"] for e in events if e["event"] != "summary"] == ["captioned", "written"], events
    with CaptionIndex.open(db) as idx:
        new_caption = idx.get(str(photo)).caption
    tags = check.exiftool_tags([photo])
    if tags:
        assert tags[photo].get("XMP-dc:Description") == new_caption


def test_hostile_queries(tmp_path):
    """Every query ends in results, "no match", or a one-line error: never a traceback."""
    from click.testing import CliRunner

    from hostile import inputs
    from photocap.cli import cli

    db = tmp_path / "index.db"
    captions = ["a dog runs on the beach", "a black and white dog", "a cat on a sofa", "café au lait ☕",
                "咖啡杯 on a table", "a man riding a bike", "NEAR the dog's ball", "w1 w2 w3"]
    with CaptionIndex.open(db) as idx:
        idx.upsert_photos(PhotoUpdate(f"/p/{i}.jpg", 1, i, caption=c, source="model", model="m", score=0.0)
                          for i, c in enumerate(captions * 50))
    runner = CliRunner()
    outcomes = {"hits": 0, "none": 0, "refused": 0}
    for seed in SEEDS:
        for query in inputs.queries(seed, n_random=200 if LONG else 60):
            for args in (["search", query], ["search", "--json", query], ["search", "--", *query.split()]):
                result = runner.invoke(cli, [*args, "--db", str(db)] if args[1] != "--" else
                                       ["search", "--db", str(db), *args[1:]])
                assert result.exception is None or isinstance(result.exception, SystemExit), (
                    query[:80], result.exception)
                if result.exit_code == 0:
                    outcomes["hits" if result.stdout.strip() else "none"] += 1
                else:
                    assert result.exit_code in (1, 2), (query[:80], result.output[-300:])
                    assert "Error:" in result.output, (query[:80], result.output[-300:])
                    outcomes["refused"] += 1
    # Repeating a word changes nothing; a long query is refused with the reason.
    with CaptionIndex.open(db) as idx:
        same = [h.record.path for h in idx.search("dog", limit=1000)]
        assert [h.record.path for h in idx.search(" ".join(["dog"] * 2400), limit=1000)] == same
    result = runner.invoke(cli, ["search", "--db", str(db), *["dog"] * 20000])
    assert result.exit_code == 1 and "at most 10,000" in result.output
    assert outcomes["hits"] and outcomes["none"] and outcomes["refused"]
    print(f"\nhostile queries: {sum(outcomes.values())} searches, {outcomes}")


def test_hostile_model_files(tiny_model_path, tmp_path, sample_photos):
    """Every broken model file is refused with a one-line reason; nothing is unpickled."""
    from click.testing import CliRunner

    from hostile import inputs
    from photocap.cli import cli

    photo = next(iter(sample_photos.values()))
    files = inputs.model_files(tiny_model_path, tmp_path / "models")
    runner = CliRunner()
    for path, what in files:
        if what == "a FIFO":
            continue  # in a real process below, with a timeout
        result = runner.invoke(cli, ["caption", "--model", str(path), "--device", "cpu", str(photo)])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (what, result.output[-500:])
        message = result.output.strip().splitlines()[-1]
        assert message.startswith("Error:") and str(path) in message, (what, message)
        assert "bundled model" not in message, (what, message)
        if what.startswith("config ") and "=" in what:
            field = what.split()[1]
            assert field in message, (what, message)
        if "NaN" in what or "infinite" in what:
            assert "NaN or infinite" in message, (what, message)
    assert not (tmp_path / "models" / "pwned").exists()
    # The FIFO as $PHOTOCAP_MODEL, in a real process: no hang, and the message blames the variable.
    fifo = next(path for path, what in files if what == "a FIFO")
    out = subprocess.run(photocap("caption", "--device", "cpu", str(photo)), capture_output=True, text=True,
                         env={**_env(), "PHOTOCAP_MODEL": str(fifo)}, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "FIFO" in out.stderr and "$PHOTOCAP_MODEL names this file" in out.stderr, out.stderr
    print(f"\nhostile model files: {len(files)} refused")
