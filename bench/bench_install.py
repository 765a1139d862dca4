"""What `pip install` of photocap costs: the size of a fresh virtual environment, the time to install
into it, and the largest packages, for this tree (and, with ``--ref``, photocap as of a git commit).

    python bench/bench_install.py [--extras gui] [--ref REF]... [--no-cache]

Each install goes into a new venv under a temporary folder, from the tree's source (the commit's via
``git archive``). ``--no-cache`` makes pip download every wheel (the time a new user waits); without
it, wheels in pip's cache are reused and the time is mostly unpacking.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def install(source: Path, extras: str, no_cache: bool, work: Path) -> tuple[float, int, list[tuple[str, int]], bool]:
    """(seconds, venv bytes, the 8 largest site-packages entries, whether torch imports)."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = f"{source}[{extras}]" if extras else str(source)
    cmd = [str(python), "-m", "pip", "install", "-q", target] + (["--no-cache-dir"] if no_cache else [])
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - t
    site = next((venv / "lib").glob("python*/site-packages"))
    largest = sorted(((p.name, tree_size(p) if p.is_dir() else p.stat().st_size) for p in site.iterdir()),
                     key=lambda e: -e[1])[:8]
    has_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode == 0
    return seconds, tree_size(venv), largest, has_torch


def source_of(ref: str | None, work: Path) -> Path:
    if ref is None:
        return REPO
    out = work / "src"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extras", default="", help="extras to install too, e.g. gui")
    ap.add_argument("--ref", action="append", default=[], help="also install photocap as of this commit")
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args()
    for ref in [None, *args.ref]:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            seconds, size, largest, has_torch = install(source_of(ref, work), args.extras, args.no_cache, work)
        name = ref or "this tree"
        print(f"{name}: pip install .{'[' + args.extras + ']' if args.extras else ''} in {seconds:.0f} s, "
              f"venv {size / 1024 ** 2:.0f} MB, torch {'importable' if has_torch else 'absent'}")
        print("  largest: " + ", ".join(f"{n} {b / 1024 ** 2:.0f} MB" for n, b in largest))


if __name__ == "__main__":
    main()
