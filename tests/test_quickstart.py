"""The README's Quick start, first command, as a user runs it (after its `pip install .`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _first_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    blocks = re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)
    return blocks[0].strip()


def test_the_quick_start_indexes_the_samples_and_finds_them_by_words_and_by_meaning(tmp_path):
    command = _first_command()
    assert command.startswith("pip install . && ")
    rest = command.removeprefix("pip install . && ")
    # PHOTOCAP_DB stands for the user's real index: the Quick start must not write into it. Its
    # throwaway index goes where mktemp puts it (TMPDIR), here inside tmp_path.
    real_index = tmp_path / "real-index.db"
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "PHOTOCAP_DB": str(real_index), "TMPDIR": str(tmp_path / "tmp"), "PATH":
           f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(["bash", "-c", rest], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    searches = re.findall(r'photocap search ("[^"]+"|\S+)', rest)
    assert searches == ['"red shirt"', "kitten"]
    # The README's promises: the astronaut by words, the cat by meaning (its caption says "cat").
    # "red shirt" finds the astronaut alone, then "kitten" finds the cat first.
    found = [Path(line).name for line in out.stdout.splitlines() if line.endswith(".jpg")]
    assert found[:2] == ["astronaut.jpg", "chelsea.jpg"], out.stdout
    assert "on top of a skateboard  (meaning" in out.stdout
    assert not real_index.exists()  # the samples never reach the user's own index
    assert list((tmp_path / "tmp").glob("*/index.db"))  # they went to the throwaway one
