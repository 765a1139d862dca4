"""Where photocap keeps things, and defaults. Nothing here does I/O at import time."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "photocap"
DB_ENV = "PHOTOCAP_DB"
MODEL_ENV = "PHOTOCAP_MODEL"
DEFAULT_MODEL_FILE = "photocap-default.safetensors"

# File types photocap reads, by lower-case suffix.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".heic", ".heif"}
)


def data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def default_db_path() -> Path:
    """The index database: ``$PHOTOCAP_DB`` if set, else the user data dir."""
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env).expanduser()
    return data_dir() / "index.db"


def bundled_models_dir() -> Path:
    """The folder holding the bundled model: ``photocap/bundled`` in an installed wheel
    (pyproject maps ``models/`` there), else ``models/`` of a source checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "bundled"
    if (installed / DEFAULT_MODEL_FILE).exists():
        return installed
    return here.parent / "models"


def env_model_path() -> Path | None:
    """The model ``$PHOTOCAP_MODEL`` names, if it is set."""
    env = os.environ.get(MODEL_ENV)
    return Path(env).expanduser() if env else None


def default_model_path() -> Path:
    """The model used when none is named: ``$PHOTOCAP_MODEL`` if set, else the bundled one."""
    return env_model_path() or bundled_models_dir() / DEFAULT_MODEL_FILE
