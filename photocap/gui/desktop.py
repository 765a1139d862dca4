"""The desktop around the app: system viewer, file manager, clipboard.

Kept in one small module so tests can replace :func:`open_url` and nothing
else launches programs.
"""

from __future__ import annotations

import os
import subprocess
import sys

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication


def open_url(url: QUrl) -> bool:
    """Hand ``url`` to the desktop (the default app for a file, the file manager for a folder)."""
    return QDesktopServices.openUrl(url)


def open_file(path: str) -> bool:
    """Open the photo in the system's default viewer."""
    return open_url(QUrl.fromLocalFile(path))


def reveal_in_file_manager(path: str) -> bool:
    """Show the photo in the file manager: selected where the platform allows, else its folder."""
    try:
        if sys.platform == "darwin":
            subprocess.Popen(["open", "-R", path])  # noqa: S603,S607
            return True
        if sys.platform.startswith("win"):
            subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])  # noqa: S603,S607
            return True
    except OSError:
        pass
    return open_url(QUrl.fromLocalFile(os.path.dirname(path) or "."))


def copy_text(text: str) -> None:
    """Put ``text`` on the clipboard."""
    QGuiApplication.clipboard().setText(text)
