"""Captioning on a real local Ray cluster (2 CPUs): the same index as a local run, and a killed
worker loses nothing committed and captions nothing twice.

The Ray tests share one local cluster (its start costs seconds); each starts its own caption
workers with the tiny model, on the CPU, with the torch backend (no ONNX export to wait for).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from photocap.errors import ClusterError
from photocap.index.store import CaptionIndex
from photocap.library.captioning import default_captioner_factory
from photocap.library.pipeline import IndexOptions, index_folders
from photocap.records import Outcome

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "photos"


def make_library(root: Path, count: int) -> Path:
    """``count`` distinct small photos (the sample photos, each pixel-marked), and one whose second
    half is missing: its header reads, so it is probed here and fails only where it is decoded."""
    from PIL import Image

    names = sorted(p.name for p in EXAMPLES.glob("*.jpg"))
    root.mkdir(parents=True)
    for i in range(count):
        with Image.open(EXAMPLES / names[i % len(names)]) as src:
            img = src.convert("RGB").resize((160, 120))
        img.putpixel((i, 0), (i * 37 % 256, 255, 0))
        img.save(root / f"p{i:02d}.jpg", quality=90)
    data = (EXAMPLES / names[0]).read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return root


def rows(db: Path) -> dict[str, tuple]:
    with sqlite3.connect(db) as conn:
        return {os.path.basename(p): (c, s, e) for p, c, s, e in
                conn.execute("SELECT path, caption, score, error FROM photos")}


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def cluster_options(model: Path, **kw):
    from photocap.library.cluster import ClusterOptions

    return ClusterOptions(model_path=str(model), device="cpu", backend="torch", **kw)


def test_a_local_ray_cluster_captions_a_library_like_a_local_run(ray_cluster, tiny_model_path, tmp_path):
    from photocap.library.cluster import RayCaptioner, ray_captioning

    lib = make_library(tmp_path / "lib", 6)
    opts = IndexOptions(batch_size=2, workers=0)
    with CaptionIndex.open(tmp_path / "local.db") as idx:
        local = index_folders([lib], idx, default_captioner_factory(tiny_model_path, device="cpu", backend="torch"),
                              opts, embedder_factory=None)
    made = []
    with ray_captioning(cluster_options(tiny_model_path)) as factory:
        def counting():
            made.append(factory())
            return made[-1]

        with CaptionIndex.open(tmp_path / "ray.db") as idx:
            remote = index_folders([lib], idx, counting, opts, embedder_factory=None)
            again = index_folders([lib], idx, counting, opts, embedder_factory=None)
    assert isinstance(made[0], RayCaptioner) and len(made[0].workers) == 2  # one per CPU of the cluster
    assert len({pid for _, pid in made[0].workers}) == 2 and os.getpid() not in {p for _, p in made[0].workers}
    assert (remote.captioned, remote.failed) == (local.captioned, local.failed) == (6, 1)
    assert again.unchanged == 7 and again.captioned == 0 and len(made) == 1  # unchanged photos cost nothing
    a, b = rows(tmp_path / "local.db"), rows(tmp_path / "ray.db")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name][0] == b[name][0], name  # the same caption
        assert a[name][2] == b[name][2], name  # or the same failure: the truncated photo, decoded on a worker
        if a[name][1] is not None:
            assert b[name][1] == pytest.approx(a[name][1], abs=1e-4), name
    assert b["truncated.jpg"][2] and b["truncated.jpg"][0] is None


def _kill_first_worker_after_first_commit(captioner_box: list, outcomes: list):
    """on_progress: record outcomes; at the first committed caption, SIGKILL one caption worker."""
    killed = []

    def on_progress(p):
        outcomes.extend(o for o in p.outcomes if o.outcome is Outcome.CAPTIONED)
        if outcomes and not killed:
            _, pid = captioner_box[0].workers[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    return on_progress, killed


@pytest.mark.parametrize("retries", [0, 1])
def test_a_killed_worker_loses_nothing_and_a_rerun_captions_each_photo_once(ray_cluster, tiny_model_path, tmp_path,
                                                                           retries):
    """retries=0: the run stops with ClusterError, the rerun finishes what is left; retries=1: the dead
    worker is restarted and its batch retried within the same run. Either way every photo is captioned
    exactly once, by the one run that committed it."""
    from photocap.library.cluster import ray_captioning

    lib = make_library(tmp_path / "lib", 12)
    opts = IndexOptions(batch_size=1, workers=0)
    first: list = []
    box: list = []
    with ray_captioning(cluster_options(tiny_model_path, retries=retries)) as factory:
        def keep():
            box.append(factory())
            return box[-1]

        on_progress, killed = _kill_first_worker_after_first_commit(box, first)
        with CaptionIndex.open(tmp_path / "ray.db") as idx:
            if retries == 0:
                with pytest.raises(ClusterError, match="run the same command again"):
                    index_folders([lib], idx, keep, opts, on_progress=on_progress, embedder_factory=None)
            else:
                index_folders([lib], idx, keep, opts, on_progress=on_progress, embedder_factory=None)
    assert killed
    kept = rows(tmp_path / "ray.db")
    assert {n for n, (c, _, _) in kept.items() if c} == {os.path.basename(o.path) for o in first}
    if retries == 0:
        assert 0 < len(first) < 12  # stopped part-way; what was committed is there
    else:
        assert len(first) == 12

    second: list = []
    with ray_captioning(cluster_options(tiny_model_path)) as factory:
        with CaptionIndex.open(tmp_path / "ray.db") as idx:
            summary = index_folders([lib], idx, factory, opts, embedder_factory=None,
                                    on_progress=lambda p: second.extend(
                                        o for o in p.outcomes if o.outcome is Outcome.CAPTIONED))
    names = [os.path.basename(o.path) for o in first + second]
    assert sorted(names) == [f"p{i:02d}.jpg" for i in range(12)]  # each photo captioned once, none twice
    assert summary.unchanged >= len(first)
    final = rows(tmp_path / "ray.db")
    assert all(final[f"p{i:02d}.jpg"][0] for i in range(12))


def test_ray_without_ray_installed_says_how_to_install_it(tmp_path):
    lib = make_library(tmp_path / "lib", 1)
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "from photocap.cli import cli\n"
            f"cli(['index', {str(lib)!r}, '--db', {str(tmp_path / 'x.db')!r}, '--ray'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1
    assert "pip install 'photocap[cluster]'" in out.stderr
    assert not (tmp_path / "x.db").exists()  # said before any work


def test_path_map_swaps_a_folder_prefix_only():
    from photocap.library.cluster import map_path

    m = (("/Volumes/photos", "/mnt/photos"),)
    assert map_path("/Volumes/photos/2020/a.jpg", m) == "/mnt/photos/2020/a.jpg"
    assert map_path("/Volumes/photos-old/a.jpg", m) == "/Volumes/photos-old/a.jpg"
    assert map_path("/home/a.jpg", m) == "/home/a.jpg"


def test_index_ray_maps_paths_and_stops_when_a_worker_cannot_see_a_photo(ray_cluster, tiny_model_path, tmp_path):
    """`photocap index --ray` end to end in a subprocess, connected to this test's running cluster
    (RAY_ADDRESS), with the photos under another name on the workers (--ray-path-map)."""
    lib = make_library(tmp_path / "lib", 2)
    seen = tmp_path / "seen-as"
    shutil.copytree(lib, seen)  # what the workers read; the driver scans lib
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    cmd = [sys.executable, "-c", "from photocap.cli import cli; cli()", "index", str(lib), "--db",
           str(tmp_path / "cli.db"), "--model", str(tiny_model_path), "--device", "cpu", "--backend", "torch",
           "--ray", "--ray-workers", "1", "--workers", "0", "--ray-path-map", f"{lib}={seen}", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["captioned"] == 2
    make_library(tmp_path / "more", 3)
    shutil.copy2(tmp_path / "more" / "p02.jpg", lib / "new.jpg")  # not on the workers' side of the map
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    # a photo the workers cannot see is a mount problem, not a bad photo: the run stops and says
    # so, and the photo is not recorded as failed (a rerun would never try it again)
    assert out.returncode == 1
    assert "cannot read" in out.stderr and str(seen / "new.jpg") in out.stderr and "--ray-path-map" in out.stderr
    assert "new.jpg" not in rows(tmp_path / "cli.db") or rows(tmp_path / "cli.db")["new.jpg"][2] is None
    shutil.copy2(lib / "new.jpg", seen / "new.jpg")  # the mount fixed
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["captioned"] == 1
    assert rows(tmp_path / "cli.db")["new.jpg"][0]
