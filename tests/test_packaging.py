"""The wheel ships every subpackage and the bundled model, and the code finds the model when installed."""

from __future__ import annotations

import os
import shutil
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


def _package_data_files() -> list[str]:
    """Files under photocap/ that are not Python: they reach users only if listed as package data."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "photocap").rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts)


def test_the_desktop_bundle_ships_every_data_file_the_wheel_does():
    # The PyInstaller spec lists data files by hand (it is not run in CI): the v5 bundle once failed
    # at start for want of imagenet_concepts.tsv. Every data file of photocap/ must be named in it,
    # and models/ must be collected with the same patterns as the wheel's photocap.bundled.
    spec = (ROOT / "packaging" / "photocap-gui.spec").read_text()
    data = _package_data_files()
    assert "photocap/imaging/imagenet_concepts.tsv" in data
    assert [f for f in data if Path(f).name not in spec] == []
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert [p for p in patterns["photocap.bundled"] if f'"{p}"' not in spec] == []


@pytest.mark.skipif(not (ROOT / "models" / "photocap-default.safetensors").exists(), reason="no bundled model")
def test_wheel_carries_the_bundled_model_and_finds_it(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("photocap-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "photocap/bundled/photocap-default.safetensors" in names
    assert "photocap/bundled/photocap-default.embedding.safetensors" in names  # the image-embedding head
    assert "photocap/bundled/MODEL_CARD.md" in names
    graphs = {f"photocap/bundled/photocap-default.{g}" for g in
              ("encoder.onnx", "decoder-init.onnx", "decoder-step.onnx", "graphs.json")}
    assert graphs <= set(names)  # the torch-free captioner's graphs of the bundled model
    assert [f for f in _package_data_files() if f not in names] == []  # the tokenizer, the concept table ...
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    code = "from photocap.settings import default_model_path; print(default_model_path())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    found = Path(out.stdout.strip())
    assert found.is_file() and found.is_relative_to(target)


def _scripts() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {**project["scripts"], **project["gui-scripts"]}


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="needs desktop-file-utils (CI installs it)")
def test_desktop_entry_validates_and_starts_an_installed_program():
    entry = ROOT / "packaging" / "linux" / "photocap.desktop"
    out = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout
    fields = dict(line.split("=", 1) for line in entry.read_text().splitlines() if "=" in line)
    assert fields["Exec"].split()[0] in _scripts()
    assert (ROOT / "packaging" / "linux" / f"{fields['Icon']}.svg").is_file()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (CI installs systemd)")
def test_watch_service_is_a_valid_user_unit_running_photocap_watch(tmp_path):
    unit = ROOT / "packaging" / "systemd" / "photocap-watch.service"
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    out = subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], capture_output=True, text=True,
                         env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)}, cwd=tmp_path)
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr
    exec_start = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart="))
    assert exec_start.split()[1:3] == ["photocap", "watch"] and "photocap" in _scripts()
