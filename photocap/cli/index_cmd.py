"""``photocap index``, ``search``, ``prune`` and ``db``: the library index from the command line.

Only click, tqdm and the index are imported here at module level; the pipeline
(and through it torch) is imported inside ``index``, so ``photocap search``
stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from photocap.cli._common import (
    backend_option,
    batch_size_option,
    db_option,
    device_option,
    echo_json,
    has_control,
    json_option,
    model_option,
    resolve_db,
    shown,
    user_errors,
    warn,
    workers_option,
)
from photocap.records import MatchedBy, Outcome, VectorKind

if TYPE_CHECKING:
    from photocap.records import SearchHit
    from photocap.library.pipeline import Progress
    from photocap.library.summary import IndexSummary

MAX_LISTED_FAILURES = 20


# --------------------------------------------------------------------------- index


@click.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@db_option
@batch_size_option
@workers_option
@device_option
@backend_option
@model_option
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Skip files and folders matching GLOB (name, path below FOLDER, or absolute path). Repeatable.")
@click.option("--follow-symlinks", is_flag=True, help="Follow symbolic links (link loops are detected).")
@click.option("--recaption", is_flag=True,
              help="Caption unchanged photos again (e.g. after changing --model). Keeps your own captions.")
@click.option("--force", is_flag=True, help="With --recaption: replace captions you wrote or edited too.")
@click.option("--write-metadata", is_flag=True,
              help="Also write each new caption into the photo (description and alt-text; see `photocap write`).")
@click.option("--keywords", is_flag=True,
              help="With --write-metadata: also add the photo's confident concepts to its keywords "
              "(see `photocap write --keywords`).")
@click.option("--ray", "use_ray", is_flag=True,
              help="Caption on a Ray cluster (needs photocap[cluster]): $RAY_ADDRESS or the cluster started "
              "on this machine with `ray start`, else a local one. See docs/cluster.md.")
@click.option("--ray-address", metavar="ADDRESS",
              help="With --ray: the cluster's address (host:6379, or ray://host:10001).")
@click.option("--ray-workers", type=click.IntRange(1), metavar="N",
              help="With --ray: caption workers (default: one per GPU of the cluster, else one per CPU).")
@click.option("--ray-path-map", "path_map", multiple=True, metavar="HERE=THERE",
              help="With --ray: the workers see paths under HERE at THERE (a shared mount). Repeatable.")
@json_option
def index(
    folders: tuple[Path, ...],
    db_path: Path | None,
    batch_size: int,
    workers: int | None,
    device: str,
    backend: str,
    model_path: Path | None,
    exclude: tuple[str, ...],
    follow_symlinks: bool,
    recaption: bool,
    force: bool,
    write_metadata: bool,
    keywords: bool,
    use_ray: bool,
    ray_address: str | None,
    ray_workers: int | None,
    path_map: tuple[str, ...],
    as_json: bool,
) -> None:
    """Caption every photo under FOLDERS into the index, incrementally.

    Photos whose path, size and modification time are unchanged since the last
    run cost one `stat` and are not read. New and changed photos are captioned;
    a moved or renamed photo keeps its caption (and your edits); deleted photos
    are flagged missing, and removed from the index if still gone next time.
    A description a person already wrote into a photo is kept as its caption
    (cameras' stock texts such as "SANYO DIGITAL CAMERA" don't count).
    Ctrl-C is safe: rerun to continue (with --write-metadata, the rerun also
    writes the captions a killed run had stored but not yet written).

    \b
    Examples:
      photocap index ~/Pictures
      photocap index ~/Pictures /media/usb/DCIM --exclude 'Screenshots' --exclude '*.gif'
      photocap index ~/Pictures --recaption --model better.safetensors
      photocap index ~/Pictures --write-metadata --keywords
      photocap index ~/Pictures --json | jq -r 'select(.event=="captioned") | .caption'
      photocap index /mnt/archive --ray --ray-address head-node:6379
    """
    from photocap.index.store import CaptionIndex
    from photocap.library.pipeline import IndexOptions, index_folders

    if force and not recaption:
        raise click.UsageError("--force only makes sense with --recaption.")
    if keywords and not write_metadata:
        raise click.UsageError("--keywords only makes sense with --write-metadata.")
    options = IndexOptions(
        batch_size=batch_size,
        workers=workers,
        exclude=exclude,
        follow_symlinks=follow_symlinks,
        recaption=recaption,
        force=force,
        write_metadata=write_metadata,
        keywords=keywords,
    )
    use_ray = use_ray or ray_address is not None or bool(ray_workers) or bool(path_map)
    # the bar's rate is the whole cluster's: every photo is committed here
    reporter = _IndexReporter(as_json, "Captioning on Ray" if use_ray else "Captioning")
    with user_errors():
        with _captioning(use_ray, ray_address, ray_workers, path_map, model_path, device, backend) as factory:
            try:
                with CaptionIndex.open(resolve_db(db_path)) as idx:
                    summary = index_folders(folders, idx, factory, options, on_progress=reporter)
            finally:
                reporter.close()
        reporter.finish(summary)


@contextmanager
def _captioning(use_ray: bool, address: str | None, workers: int | None, path_map: tuple[str, ...],
                model_path: Path | None, device: str, backend: str) -> Iterator[Any]:
    """The captioner factory: the model in this process, or caption workers on a Ray cluster."""
    from photocap.library.captioning import default_captioner_factory

    if not use_ray:
        yield default_captioner_factory(model_path, device=device, backend=backend)
        return
    from photocap.library.cluster import ClusterOptions, ray_captioning, require_ray

    require_ray()  # before the scan: say how to install it, not after minutes of work
    pairs = []
    for item in path_map:
        here, sep, there = item.partition("=")
        if not sep or not here or not there:
            raise click.BadParameter(f"{item!r}: use HERE=THERE", param_hint="--ray-path-map")
        pairs.append((os.path.abspath(here), there))
    options = ClusterOptions(address=address, workers=workers, path_map=tuple(pairs),
                             model_path=str(model_path.resolve()) if model_path is not None else None,
                             device=device, backend=backend)
    with ray_captioning(options) as factory:
        yield factory


class _IndexReporter:
    """Progress callback: a tqdm bar on stderr, or one JSON object per outcome on stdout."""

    def __init__(self, as_json: bool, label: str = "Captioning") -> None:
        self.as_json = as_json
        self.label = label
        self.bar: Any = None

    def __call__(self, p: Progress) -> None:
        if self.as_json:
            for o in p.outcomes:
                if o.outcome is not Outcome.UNCHANGED:
                    echo_json(o.to_dict())
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=None, unit="file", desc="Scanning", file=sys.stderr, dynamic_ncols=True,
                            disable=None, leave=False)
        if p.phase == "scan":
            self.bar.set_postfix_str(f"{p.scanned} found", refresh=False)
            self.bar.refresh()
            return
        if p.phase == "embed":  # the text vectors still owed (search by meaning), after the files
            if self.bar.desc != "Embedding":
                self.bar.reset(total=p.total)
                self.bar.set_description("Embedding")
                self.bar.unit = "caption"
            self.bar.set_postfix_str(f"{p.summary.embedded} embedded", refresh=False)
            self.bar.update(p.done - self.bar.n)
            return
        if self.bar.total != p.total:
            self.bar.reset(total=p.total)
            self.bar.set_description(self.label)
        self.bar.set_postfix_str(
            f"{p.summary.captioned} captioned, {p.summary.failed} failed", refresh=False
        )
        self.bar.update(p.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def finish(self, s: IndexSummary) -> None:
        from photocap.library.summary import format_index_summary

        if self.as_json:
            echo_json({"event": "summary", **s.to_dict()})
            return
        for f in s.failures[:MAX_LISTED_FAILURES]:
            warn(f"failed: {shown(f.path)}: {shown(f.reason or '')}")
        if len(s.failures) > MAX_LISTED_FAILURES:
            warn(f"... and {len(s.failures) - MAX_LISTED_FAILURES} more failures (see --json).")
        for f in s.write_failures[:MAX_LISTED_FAILURES]:
            warn(f"metadata not written: {f.reason}")
        for e in s.scan_errors[:MAX_LISTED_FAILURES]:
            warn(f"could not read folder: {shown(e.path)}: {shown(e.reason)}")
        click.echo(format_index_summary(s))


# --------------------------------------------------------------------------- search


class _QueryCommand(click.Command):
    """A command whose words may start with '-' (``cat -sofa``: exclude a word) without being
    taken for options; a mistyped ``--option`` is still an error (words after ``--`` never are)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = {name for param in self.params for name in (*param.opts, *param.secondary_opts)}
        known |= set(self.get_help_option_names(ctx))
        for arg in args:
            if arg == "--":
                break
            if arg.startswith("--") and len(arg) > 2 and arg.split("=", 1)[0] not in known:
                longs = sorted(name for name in known if name.startswith("--"))
                raise click.NoSuchOption(arg.split("=", 1)[0], possibilities=longs, ctx=ctx)
        return super().parse_args(ctx, args)


@click.command(cls=_QueryCommand, context_settings={"ignore_unknown_options": True})
@click.argument("query", nargs=-1, required=True)
@db_option
@click.option("--mode", type=click.Choice(["hybrid", "words", "meaning"]), default="hybrid", show_default=True,
              help="hybrid: words and meaning together; words: the caption's and concepts' words only; "
                   "meaning: what the query means, whatever its words.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20, show_default=True,
              help="Show at most this many photos, best first.")
@json_option
@click.option("--paths-only", is_flag=True,
              help="Print only paths, one per line (control characters, such as a newline in a file name, "
                   "shown escaped: use --print0 to pass paths to other programs).")
@click.option("--print0", is_flag=True,
              help="Print only paths, each followed by a NUL byte, exactly as they are on disk "
                   "(for xargs -0, as with find -print0).")
def search(query: tuple[str, ...], db_path: Path | None, mode: str, limit: int, as_json: bool,
           paths_only: bool, print0: bool) -> None:
    """Find photos for QUERY, best match first: by its words and by what it means.

    By default (--mode hybrid) a photo is found by the words of its caption, by
    what the model's classifier saw in it (its concepts: "elephant" finds the
    elephant a caption missed, "animal" finds dogs and cats), and by meaning:
    "puppy" finds "a dog runs on the grass", "seaside" finds a beach, in your
    own words. Each result says why it matched (words, concepts, meaning,
    image). Words match other forms of themselves ("dogs running" finds "a dog
    runs"); the last word also matches as a prefix ("sun" finds "sunset"). Use
    "quotes" for an exact phrase, OR between alternatives, and -word to exclude
    a word (in every mode: an excluded word is never brought back by meaning).
    Any text is safe to type. Without the sentence model, search is by words
    and says how to turn meaning on.

    \b
    Examples:
      photocap search puppy on the beach
      photocap search dog on a beach --mode words
      photocap search a child in a red coat playing in the snow --mode meaning
      photocap search '"red car"' OR bicycle
      photocap search cat -sofa --limit 5
      photocap search sunset --print0 | xargs -0 eog
      photocap search birthday --json | jq -r '.path + " " + (.matched_by | join(","))'
    """
    from photocap.errors import MeaningUnavailable
    from photocap.index.store import CaptionIndex
    from photocap.library.search import SearchMode, query_embedder, search_page

    if print0 and as_json:
        raise click.UsageError("--print0 and --json are two different outputs: choose one.")
    text = " ".join(query)
    chosen = SearchMode(mode)
    embed = None
    with user_errors():
        if chosen is not SearchMode.WORDS:
            try:
                embed = query_embedder()
            except MeaningUnavailable as exc:
                if chosen is SearchMode.MEANING:
                    raise
                warn(f"Searching by words only: {exc}")
        with CaptionIndex.open(resolve_db(db_path), create=False, readonly_ok=True) as idx:
            page = search_page(idx, text, mode=chosen, limit=limit, embed=embed,
                               highlight=_markers(as_json or paths_only or print0))
            hits, total = page.hits, page.total
            empty_index = not hits and not idx.has_captions()
            no_vectors = (not hits and embed is not None and not empty_index
                          and not idx.vectors.has(VectorKind.TEXT, embed.model_id))
    if not hits:
        hint = " The index has no captions yet: run `photocap index FOLDER`." if empty_index else ""
        if no_vectors:
            hint = (" The index has no vectors for search by meaning yet: run `photocap index FOLDER` "
                    "(it embeds the captions it has, without captioning again).")
        warn(f"No photos match {text!r}.{hint}")
        return
    if print0:
        out = click.get_binary_stream("stdout")
        for hit in hits:
            out.write(os.fsencode(hit.record.path) + b"\0")
        out.flush()
        return
    for hit in hits:
        _print_hit(hit, as_json, paths_only)
    if paths_only and any(has_control(h.record.path) for h in hits):
        warn("Some paths hold control characters (shown escaped); use --print0 | xargs -0 to pass them on.")
    if total > len(hits) and not (as_json or paths_only):
        warn(f"Showing {len(hits)} of {total} matches; use --limit to see more.")


def _markers(plain: bool) -> tuple[str, str]:
    if plain or not sys.stdout.isatty() or os.environ.get("NO_COLOR"):
        return ("[", "]")
    return ("\x1b[1;33m", "\x1b[0m")


def _print_hit(hit: SearchHit, as_json: bool, paths_only: bool) -> None:
    if paths_only:
        click.echo(shown(hit.record.path))
    elif as_json:
        r = hit.record
        echo_json({
            "path": r.path, "caption": r.caption, "snippet": hit.snippet, "rank": round(hit.rank, 4),
            "source": r.source, "score": r.score, "model": r.model, "taken_at": r.taken_at,
            "camera": r.camera, "width": r.width, "height": r.height, "id": r.id,
            "matched_by": [str(m) for m in hit.matched_by], "concepts": [c.to_dict() for c in hit.concepts],
            "meaning_score": _round(hit.meaning_score), "pixels_score": _round(hit.image_score),
            "fused_score": _round(hit.fused_score, 6),
        })
    else:
        click.echo(click.style(shown(hit.record.path), bold=True))
        why = ""
        if MatchedBy.WORDS not in hit.matched_by:  # say why: the caption does not hold the words
            reasons = []
            if MatchedBy.CONCEPTS in hit.matched_by:
                reasons.append("sees: " + ", ".join(f"{c.word} {c.score:.0%}" for c in hit.concepts[:3]))
            if MatchedBy.MEANING in hit.matched_by and hit.meaning_score is not None:
                reasons.append(f"meaning {hit.meaning_score:.2f}")
            if MatchedBy.IMAGE in hit.matched_by and hit.image_score is not None:
                reasons.append(f"looks like it {hit.image_score:.2f}")
            why = "  (" + "; ".join(reasons) + ")" if reasons else ""
        click.echo(f"    {shown(hit.snippet)}" + ("  (yours)" if hit.record.source == "user" else "") + why)


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


# --------------------------------------------------------------------------- prune


@click.command()
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path))
@db_option
@click.option("--gone-folders", is_flag=True,
              help="Also remove photos whose whole folder is gone (by default they are kept, "
                   "in case it is an unmounted drive).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@json_option
def prune(folders: tuple[Path, ...], db_path: Path | None, gone_folders: bool, dry_run: bool,
          as_json: bool) -> None:
    """Remove photos whose files no longer exist from the index (below FOLDERS, or all).

    Their captions go too, including ones you wrote; a photo that was only
    moved keeps its caption if you index its new folder before pruning.

    \b
    Examples:
      photocap prune --dry-run
      photocap prune ~/Pictures/old-phone
    """
    from photocap.index.store import CaptionIndex
    from photocap.library import sync

    with user_errors(), CaptionIndex.open(resolve_db(db_path), create=False) as idx:
        unders = [r.path for r in sync.library_roots(idx, folders, must_exist=False)] if folders else [None]
        result = sync.prune(idx, unders, gone_folders=gone_folders, dry_run=dry_run)
    removed, gone, kept_folders = len(result.removed), list(result.removed), result.kept_in_gone_folders
    if as_json:
        echo_json({"removed": removed, "dry_run": dry_run, "kept_missing_folders": kept_folders,
                   "paths": gone})
        return
    verb = "Would remove" if dry_run else "Removed"
    click.echo(f"{verb} {removed} photo{'s' if removed != 1 else ''} whose files are gone.")
    if kept_folders:
        warn(f"Kept {kept_folders} photos whose folder is not there (an unmounted drive?); "
             "pass --gone-folders to remove them too.")


# --------------------------------------------------------------------------- db


@click.group()
def db() -> None:
    """Where the index is, what is in it, and backups.

    \b
    Examples:
      photocap db path
      photocap db status --json
      photocap db backup ~/photocap-index-backup.db
    """


@db.command("path")
@db_option
def db_path_cmd(db_path: Path | None) -> None:
    """Print the index database's path ($PHOTOCAP_DB or --db override the default)."""
    click.echo(str(resolve_db(db_path)))


@db.command("status")
@db_option
@json_option
def db_status(db_path: Path | None, as_json: bool) -> None:
    """Counts (captions by source, missing, failed), model ids and size of the index."""
    from photocap.index.store import CaptionIndex

    with user_errors(), CaptionIndex.open(resolve_db(db_path), create=False, readonly_ok=True) as idx:
        s = idx.stats()
    if as_json:
        echo_json(s)
        return
    click.echo(f"Index:     {s['path']}")
    click.echo(f"Photos:    {s['photos']} ({s['model_captions']} captioned by a model, "
               f"{s['user_captions']} by you, {s['uncaptioned']} without a caption)")
    click.echo(f"Missing:   {s['missing']}    Failed: {s['failed']}    Writes owed: {s['write_owed']} "
               "(asked for with --write-metadata, not in the file yet)")
    models = ", ".join(f"{m} ({n})" for m, n in s["models"].items()) or "none"
    click.echo(f"Models:    {models}")
    kinds = {VectorKind.TEXT: "meaning", VectorKind.IMAGE: "image"}
    vecs = "; ".join(f"{kinds.get(k, k)}: " + ", ".join(f"{n} by {m}" for m, n in by_model.items())
                     for k, by_model in s["vectors"].items()) or "none (`photocap index` makes them)"
    click.echo(f"Vectors:   {vecs}")
    click.echo(f"Size:      {_human_bytes(s['db_bytes'] + s['wal_bytes'])}")


@db.command("backup")
@click.argument("dest", type=click.Path(path_type=Path))
@db_option
def db_backup(dest: Path, db_path: Path | None) -> None:
    """Copy the index to DEST safely, even while it is being written."""
    from photocap.index.store import CaptionIndex

    with user_errors(), CaptionIndex.open(resolve_db(db_path), create=False, readonly_ok=True) as idx:
        target = idx.backup(dest)
    click.echo(f"Backed up the index to {target}.")


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
