"""photocap without torch: caption, index, search, write, watch and the GUI run in a process where
torch cannot be imported (an import of it fails the command), and a fresh `pip install .` holds no
torch at all (slow: builds a virtual environment)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Any import of torch (or torchvision, triton) fails in the child process, as where it is not installed.
NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "triton"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: photocap must run without torch)")
        return None
sys.meta_path.insert(0, NoTorch())
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PHOTOCAP_ONNX_CACHE": str(tmp_path / "onnx-cache"),
            "PYTHONPATH": str(ROOT)}


def _photocap(tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    code = NO_TORCH + "from photocap.cli import cli\ncli()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=_env(tmp_path),
                          timeout=timeout, cwd=tmp_path)


def test_the_blocker_really_blocks_torch(tmp_path):
    out = subprocess.run([sys.executable, "-c", NO_TORCH + "import torch"], capture_output=True, text=True,
                         env=_env(tmp_path))
    assert out.returncode == 1 and "blocked: photocap must run without torch" in out.stderr


def test_caption_index_search_and_write_without_torch(tmp_path, photo_dir):
    db = str(tmp_path / "index.db")
    out = _photocap(tmp_path, "caption", str(photo_dir), "--json", "--concepts")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 4 and all(r["caption"] and r["concepts"] for r in rows)
    assert "cat" in next(r["caption"] for r in rows if r["path"].endswith("chelsea.jpg"))

    out = _photocap(tmp_path, "index", str(photo_dir), "--db", db, "--workers", "0", "--json")
    assert out.returncode == 0, out.stderr
    out = _photocap(tmp_path, "search", "cat", "--db", db, "--json")
    assert out.returncode == 0, out.stderr
    assert any(json.loads(line)["path"].endswith("chelsea.jpg") for line in out.stdout.splitlines())
    out = _photocap(tmp_path, "search", "a hot drink", "--mode", "meaning", "--db", db, "--json")  # image vectors too
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[0])["path"].endswith("coffee.jpg")

    out = _photocap(tmp_path, "write", str(photo_dir), "--db", db)
    assert out.returncode == 0, out.stderr
    read = subprocess.run(["exiftool", "-s3", "-XMP-dc:Description", str(photo_dir / "chelsea.jpg")],
                          capture_output=True, text=True, check=True)
    assert "cat" in read.stdout
    assert not (tmp_path / "onnx-cache").exists()  # the bundled graphs, nothing exported


def test_watch_captions_a_new_photo_without_torch(tmp_path, sample_photos):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    code = NO_TORCH + "from photocap.cli import cli\ncli()"
    proc = subprocess.Popen([sys.executable, "-c", code, "watch", str(inbox), "--db", str(tmp_path / "w.db"),
                             "--json", "--settle", "0.2", "--workers", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(tmp_path), cwd=tmp_path)
    try:
        time.sleep(3)
        shutil.copy(sample_photos["coffee.jpg"], inbox / "new.jpg")
        deadline = time.monotonic() + 240
        events = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            events.append(json.loads(line))
            if events[-1].get("event") == "captioned":
                break
        captioned = [e for e in events if e.get("event") == "captioned"]
        assert captioned and captioned[0]["path"].endswith("new.jpg") and captioned[0]["caption"], events
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


GUI = NO_TORCH + """
import sys
from PySide6.QtWidgets import QApplication
from photocap.gui.window import MainWindow
from photocap.library.pipeline import IndexOptions
app = QApplication([])
window = MainWindow(sys.argv[1], index_options=IndexOptions(workers=0, batch_size=2), device="cpu",
                    thumbnail_dir=sys.argv[3])
window.show()
worker = window.start_indexing([sys.argv[2]])
while window.indexing:
    app.processEvents()
window.search_box.setText("cat")
window.run_search()
app.processEvents()
print(window.model.rowCount())
"""


def test_the_desktop_app_indexes_and_searches_without_torch(tmp_path, photo_dir):
    out = subprocess.run([sys.executable, "-c", GUI, str(tmp_path / "gui.db"), str(photo_dir), str(tmp_path / "thumbs")],
                         capture_output=True, text=True, env=_env(tmp_path), timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip().splitlines()[-1]) >= 1


@pytest.mark.slow
def test_a_fresh_install_is_light_and_has_no_torch(tmp_path):
    """`pip install .` into a new virtual environment: at most 1 GB in all, no torch, and it captions."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(ROOT)], check=True, timeout=1200)
    size = sum(p.stat().st_size for p in venv.rglob("*") if p.is_file() and not p.is_symlink())
    assert size <= 1024 ** 3, f"{size / 1024 ** 2:.0f} MB"
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    assert probe.returncode != 0
    out = subprocess.run([str(venv / "bin" / "photocap"), "caption", str(ROOT / "examples" / "photos" / "chelsea.jpg")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "PHOTOCAP_ONNX_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stderr
    assert "cat" in out.stdout
