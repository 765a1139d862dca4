"""The skip policy, run for real: pytest on sample test files with tests/skip_policy.py loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from skip_policy import verdict

TESTS = Path(__file__).resolve().parent

SAMPLE = '''
import pytest

def test_photocap_module_missing():
    pytest.importorskip("photocap.no_such_module")

@pytest.mark.skipif(True, reason="exiftool not installed")
def test_needs_exiftool():
    pass

@pytest.mark.skipif(True, reason="shared Flickr8k not here")
def test_needs_data():
    pass

@pytest.mark.skipif(True, reason="just because")
def test_unlisted():
    pass
'''

MODULE_LEVEL = '''
import pytest
pytest.importorskip("photocap.no_such_module")

def test_never_runs():
    pass
'''


def run_pytest(test_file: Path, ci: bool) -> str:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "PHOTOCAP_CI": "1" if ci else "0"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "skip_policy", "-rA", "-q", "-p",
                          "no:cacheprovider", test_file.name], capture_output=True, text=True, env=env,
                         cwd=test_file.parent, timeout=120)
    return out.stdout + out.stderr


def test_a_skipped_photocap_import_fails_and_ci_allows_only_its_list(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(SAMPLE)
    module = tmp_path / "test_module.py"
    module.write_text(MODULE_LEVEL)
    assert "ERROR test_module.py" in run_pytest(module, ci=False)  # a module-level importorskip
    local = run_pytest(sample, ci=False)
    assert "FAILED test_sample.py::test_photocap_module_missing" in local
    assert "ERROR test_sample.py::test_unlisted" in local  # a skipif in setup becomes a setup error
    assert "SKIPPED" in local and "exiftool not installed" in local
    assert "2 skipped" in local
    ci = run_pytest(sample, ci=True)
    assert "1 skipped" in ci  # only the data set CI does not have
    assert "CI installs what this test needs" in ci


def test_verdicts() -> None:
    assert verdict("could not import 'photocap.metadata.reader': boom", ci=False)
    assert verdict("exiftool not installed", ci=False) is None
    assert verdict("exiftool not installed", ci=True)
    assert verdict("could not import 'PySide6.QtWidgets': no module", ci=False) is None
    assert verdict("root can read anything", ci=True) is None
