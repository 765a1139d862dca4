"""Before Qt starts on X11: are the system libraries its xcb platform plugin needs there?

Qt's xcb plugin links a dozen small X libraries that PySide6's wheels do not ship. A fresh
Debian or Ubuntu desktop lacks some of them (``libxcb-cursor0``, ``libxcb-icccm4``,
``libxcb-keysyms1``), and then Qt aborts the process (SIGABRT, a core dump) with a message
about the plugin. :func:`missing_message` asks the dynamic loader for each library first,
without importing Qt, and returns a message naming the packages to install, or None.
It only checks when the platform Qt will pick is xcb (Linux, not Wayland, not offscreen).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# What libqxcb.so / libQt6XcbQpa.so.6 need from the system -> the Debian/Ubuntu package.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}


def platform_name(environ: Mapping[str, str] | None = None, argv: list[str] | None = None) -> str:
    """The Qt platform plugin a QApplication will load here ("xcb", "wayland", "offscreen"...)."""
    env = os.environ if environ is None else environ
    args = sys.argv if argv is None else argv
    for i, arg in enumerate(args[:-1]):
        if arg in ("-platform", "--platform"):
            return args[i + 1].split(":")[0].split(";")[0]
    chosen = env.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0]
    if not sys.platform.startswith("linux"):
        return "native"
    if env.get("XDG_SESSION_TYPE") == "wayland" and env.get("WAYLAND_DISPLAY"):
        return "wayland"
    return "xcb"


def _bundled_libs() -> set[str]:
    """Library file names PySide6 ships itself (found through its own search path)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return set()
    names: set[str] = set()
    for location in spec.submodule_search_locations:
        folder = Path(location) / "Qt" / "lib"
        if folder.is_dir():
            names |= {p.name for p in folder.iterdir()}
    return names


def _loads(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_libraries(loads: Callable[[str], bool] | None = None) -> list[str]:
    """The xcb plugin's system libraries the dynamic loader cannot find (sonames)."""
    probe = loads or _loads
    bundled = _bundled_libs()
    return [name for name in XCB_LIBRARIES if name not in bundled and not probe(name)]


def missing_message(environ: Mapping[str, str] | None = None, argv: list[str] | None = None,
                    loads: Callable[[str], bool] | None = None) -> str | None:
    """Why the desktop app cannot start on X11 here and what to install; None if it can."""
    if platform_name(environ, argv) != "xcb":
        return None
    missing = missing_libraries(loads)
    if not missing:
        return None
    packages = " ".join(XCB_LIBRARIES[m] for m in missing)
    return (
        "The photocap desktop app cannot start: Qt's X11 (xcb) platform needs system libraries "
        f"that are not installed: {', '.join(missing)}.\n"
        f"On Debian or Ubuntu install them with:\n  sudo apt-get install {packages}\n"
        "(Fedora: sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms xcb-util-image "
        "xcb-util-renderutil libxkbcommon-x11). On a Wayland desktop, QT_QPA_PLATFORM=wayland "
        "photocap gui avoids X11."
    )
