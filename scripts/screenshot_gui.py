#!/usr/bin/env python
"""Regenerate docs/screenshot.png: the real photocap window over the example photos.

Builds an index of examples/photos in a temporary database with the bundled
model (or ``--model PATH``) and the sentence model's text vectors, opens the real
MainWindow offscreen, types a query (by default one that only search by meaning
answers: no caption holds "kid" or "kitten"), selects a result and saves a grab
of the window::

    python scripts/screenshot_gui.py                      # bundled model, hybrid search
    python scripts/screenshot_gui.py --model tiny.safetensors --query playing --mode words --select chelsea.jpg

Runs without a display (QT_QPA_PLATFORM=offscreen is set unless already set).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_index(db: Path, photos: Path, model: Path | None) -> int:
    """Caption ``photos`` into ``db`` with the real pipeline; return photos captioned."""
    from photocap.index.store import CaptionIndex
    from photocap.library.captioning import default_captioner_factory
    from photocap.library.pipeline import IndexOptions, index_folders

    with CaptionIndex.open(db) as index:
        summary = index_folders([photos], index, default_captioner_factory(model, device="cpu"),
                                IndexOptions(workers=0))
    if summary.failures:
        for f in summary.failures:
            print(f"warning: {f.path}: {f.reason}", file=sys.stderr)
    return summary.captioned


def wait_until(condition, timeout_s: float = 20.0) -> bool:
    """Run the Qt event loop until ``condition()`` or the timeout."""
    from PySide6.QtTest import QTest

    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            return False
        QTest.qWait(20)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="model file (default: the bundled model, when present)")
    parser.add_argument("--photos", type=Path, default=ROOT / "examples" / "photos")
    parser.add_argument("--query", default="kid playing with a kitten", help="text typed into the search box")
    parser.add_argument("--mode", default="hybrid", choices=("hybrid", "words", "meaning"),
                        help="the search mode selected next to the search box")
    parser.add_argument("--select", default="chelsea.jpg", help="file name of the result to select")
    parser.add_argument("--size", default="1180x720", help="window size, WxH")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from photocap.settings import default_model_path

    model = args.model or default_model_path()
    if not model.is_file():
        print(f"No model at {model}. Pass --model PATH (e.g. a tiny model from tests/conftest.py's "
              "train_tiny_model() saved with photocap.model.checkpoint.save_model).", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="photocap-shot-") as tmp:
        db = Path(tmp) / "index.db"
        n = build_index(db, args.photos.resolve(), model)
        print(f"indexed {n} photos with {model.name}")

        from PySide6.QtCore import Qt
        from PySide6.QtGui import QIcon
        from PySide6.QtTest import QTest
        from PySide6.QtWidgets import QApplication

        from photocap.gui.compat import protect_none
        from photocap.gui.models import PathRole
        from photocap.gui.window import MainWindow

        protect_none()
        app = QApplication.instance() or QApplication([sys.argv[0]])
        app.setApplicationName("photocap")
        app.setWindowIcon(QIcon(str(ROOT / "packaging" / "linux" / "photocap.svg")))
        window = MainWindow(db, model_path=model, thumbnail_dir=Path(tmp) / "thumbs")
        width, height = (int(v) for v in args.size.lower().split("x"))
        window.resize(width, height)
        window.show()
        QTest.qWaitForWindowExposed(window)

        window.set_search_mode(args.mode)
        window.search_box.setFocus()
        QTest.keyClicks(window.search_box, args.query, Qt.KeyboardModifier.NoModifier, 30)
        wait_until(lambda: not window.search_timer.isActive() and not window.meaning.loading)
        if window.meaning.error:
            print(f"warning: {window.meaning.error}", file=sys.stderr)
        names = [Path(window.model.index(r).data(PathRole)).name for r in range(window.model.rowCount())]
        print(f"{window.count_label.text()}: {', '.join(names)}")
        if args.select in names:
            window.view.setCurrentIndex(window.model.index(names.index(args.select)))
        elif names:
            window.view.setCurrentIndex(window.model.index(0))
        window.view.setFocus()

        def thumbnails_ready() -> bool:
            grid = all(window.model.index(r).data(Qt.ItemDataRole.DecorationRole) is not None
                       for r in range(window.model.rowCount()))
            preview = window.detail.record is None or window.detail.preview.pixmap() is not None \
                and not window.detail.preview.pixmap().isNull()
            return grid and preview

        if not wait_until(thumbnails_ready):
            print("warning: some thumbnails were not ready", file=sys.stderr)
        QTest.qWait(100)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(args.out)):
            print(f"could not save {args.out}", file=sys.stderr)
            return 1
        print(f"saved {args.out}")
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
