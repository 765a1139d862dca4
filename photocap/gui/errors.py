"""Errors in the window: user-facing text, and a dialog for uncaught exceptions.

:func:`install_excepthook` replaces ``sys.excepthook`` so that an exception
escaping a Qt slot shows a dialog with the traceback instead of killing the
app (PySide6 reports such exceptions through ``sys.excepthook`` and goes on).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from types import TracebackType

from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from photocap.errors import PhotocapError

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], object]

_dialogs: list[QMessageBox] = []  # keep open dialogs alive (they are shown non-modally)


def user_message(exc: BaseException) -> str:
    """The text to show for ``exc``: photocap's own message, else a short technical one."""
    if isinstance(exc, PhotocapError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def show_exception_dialog(
    exc_type: type[BaseException],
    exc: BaseException,
    tb: TracebackType | None,
    parent: QWidget | None = None,
) -> QMessageBox:
    """Show (non-modally) a dialog with the error and its traceback; return it."""
    details = "".join(traceback.format_exception(exc_type, exc, tb))
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle("photocap: unexpected error")
    box.setText("Something went wrong. photocap keeps running; your index is safe.")
    box.setInformativeText(user_message(exc))
    box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    box.setObjectName("exceptionDialog")
    box.finished.connect(lambda _r, b=box: _dialogs.remove(b) if b in _dialogs else None)
    _dialogs.append(box)
    box.show()
    return box


def install_excepthook(parent: Callable[[], QWidget | None] = lambda: None) -> ExceptHook:
    """Route uncaught exceptions to :func:`show_exception_dialog`; return the previous hook.

    The traceback is also printed to stderr. KeyboardInterrupt keeps its usual
    meaning. If no QApplication exists the previous hook runs.
    """
    previous = sys.excepthook
    busy = False

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        nonlocal busy
        if issubclass(exc_type, KeyboardInterrupt) or QApplication.instance() is None or busy:
            previous(exc_type, exc, tb)
            return
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        busy = True  # an error while showing the dialog must not recurse
        try:
            show_exception_dialog(exc_type, exc, tb, parent())
        finally:
            busy = False

    sys.excepthook = hook
    return previous
