"""Work-arounds for bugs in the Qt bindings, applied by the app before it builds widgets.

PySide6 6.12.0 on CPython 3.11 drops a reference to ``None`` that it never
took each time Python calls a Qt method that returns ``void`` (``setText``,
``show``, ``processEvents``, every ``QPainter.draw*`` ...). After a few
thousand such calls CPython aborts with "Fatal Python error: none_dealloc".
CPython 3.12 made ``None`` immortal, which hides the bug there.

:func:`protect_none` detects the leak with a probe and, only if it is
present, makes ``None`` effectively immortal on this interpreter too by
adding 2**40 to its reference count (what 3.12 does, in spirit). The write is
verified with ``sys.getrefcount`` and undone if the layout is not the
expected one (e.g. a debug build), in which case nothing changes.
"""

from __future__ import annotations

import sys

_BOOST = 1 << 40
_applied = False


def none_refcount_leaks() -> bool:
    """True if calling a void Qt method loses a reference to None (the PySide6 6.12 bug)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(32):
        probe.setObjectName("probe")
    return sys.getrefcount(None) < before - 16


def protect_none() -> bool:
    """Apply the work-around if this interpreter needs it; True if it is in place."""
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if not none_refcount_leaks():
        return False
    import ctypes

    before = sys.getrefcount(None)
    cell = ctypes.c_ssize_t.from_address(id(None))  # ob_refcnt is the first field (release builds)
    if cell.value < before - 64 or cell.value > before + 64:
        return False  # not the layout we expect: leave it alone
    cell.value += _BOOST
    if sys.getrefcount(None) - before < _BOOST - 1024:
        cell.value -= _BOOST
        return False
    _applied = True
    return True
