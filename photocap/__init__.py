"""photocap: caption photo libraries offline, search them, write captions into photos.

The public API is imported lazily so that ``import photocap`` stays cheap and
never loads torch or Qt by itself.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Captioner": "photocap.captioner",
    "CaptionIndex": "photocap.index.store",
    "write_caption": "photocap.metadata.writer",
    "read_metadata": "photocap.metadata.reader",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'photocap' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
