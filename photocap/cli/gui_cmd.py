"""``photocap gui``: open the desktop app. Qt is imported only when the command runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from photocap.cli._common import db_option, device_option, model_option, resolve_db


@click.command()
@db_option
@model_option
@device_option
def gui(db_path: Path | None, model_path: Path | None, device: str) -> None:
    """Open the desktop app: find photos by caption, review and fix captions.

    Type to search; select a photo to see it larger, edit its caption (F2) and
    save it as yours, or write it into the file. "Add folder..." captions a
    folder in the background. Needs PySide6: pip install 'photocap[gui]'.
    """
    from photocap.gui.app import run, startup_problem

    problem = startup_problem()
    if problem is not None:
        raise click.ClickException(problem)
    sys.exit(run(resolve_db(db_path), model_path, device))
