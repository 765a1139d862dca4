"""Entry point of the desktop app: ``photocap-gui`` and ``photocap gui``.

Qt is imported inside :func:`run`, so importing this module is cheap and a
missing PySide6 can be reported with the command that installs it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

MISSING_QT = "The photocap desktop app needs PySide6. Install it with:  pip install 'photocap[gui]'"


def qt_available() -> bool:
    """True if PySide6 (QtWidgets) can be imported."""
    try:
        import PySide6.QtWidgets  # noqa: F401
    except ImportError:
        return False
    return True


def startup_problem(argv: Sequence[str] | None = None) -> str | None:
    """Why the app cannot start here (no PySide6, X11 libraries missing), else None.

    Checked before Qt is started, so a missing library is a message, not Qt's abort.
    """
    if not qt_available():
        return MISSING_QT
    from photocap.gui.xcb import missing_message

    return missing_message(argv=list(argv) if argv is not None else None)


def run(db_path: str | os.PathLike[str] | None = None, model_path: str | os.PathLike[str] | None = None,
        device: str = "auto", argv: Sequence[str] | None = None) -> int:
    """Open the window over the index at ``db_path`` (default: the usual index) and run Qt."""
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from photocap.gui.compat import protect_none
    from photocap.gui.errors import install_excepthook
    from photocap.gui.window import MainWindow
    from photocap.settings import default_db_path

    protect_none()
    app = QApplication.instance() or QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName("photocap")
    app.setOrganizationName("photocap")
    app.setApplicationDisplayName("photocap")
    app.setDesktopFileName("photocap")
    icon = _icon_path()
    if icon is not None:
        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow(Path(db_path) if db_path is not None else default_db_path(),
                        model_path=model_path, device=device, settings=QSettings())
    previous = install_excepthook(lambda: window)
    window.show()
    try:
        return app.exec()
    finally:
        sys.excepthook = previous


def _icon_path() -> Path | None:
    here = Path(__file__).resolve()
    for candidate in (here.parent / "photocap.svg",
                      here.parents[2] / "packaging" / "linux" / "photocap.svg"):
        if candidate.is_file():
            return candidate
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``photocap-gui [--db PATH] [--model PATH] [--device ...]``."""
    parser = argparse.ArgumentParser(prog="photocap-gui", description="Find photos by caption, "
                                     "review and correct captions.")
    parser.add_argument("--db", type=Path, default=None, help="index database (default: $PHOTOCAP_DB "
                        "or the user data folder)")
    parser.add_argument("--model", type=Path, default=None, help="captioning model for Add folder "
                        "(default: the bundled model)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    args, qt_args = parser.parse_known_args(argv)
    problem = startup_problem([sys.argv[0], *qt_args])
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    return run(args.db, args.model, args.device, argv=[sys.argv[0], *qt_args])


if __name__ == "__main__":
    sys.exit(main())
