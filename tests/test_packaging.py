"""The wheel ships every subpackage and the bundled model, and the code finds the model when installed."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "photocap").rglob("__init__.py")}
    assert found | {"photocap.bundled"} == listed


@pytest.mark.skipif(not (ROOT / "models" / "photocap-default.safetensors").exists(), reason="no bundled model")
def test_wheel_carries_the_bundled_model_and_finds_it(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("photocap-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "photocap/bundled/photocap-default.safetensors" in names
    assert "photocap/bundled/MODEL_CARD.md" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    code = "from photocap.settings import default_model_path; print(default_model_path())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    found = Path(out.stdout.strip())
    assert found.is_file() and found.is_relative_to(target)
