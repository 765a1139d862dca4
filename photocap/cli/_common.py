"""Options and helpers shared by the CLI commands. Imports only click and stdlib."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from photocap.errors import PhotocapError

db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Index database file. Default: $PHOTOCAP_DB, else the user data folder "
    "(see `photocap db path`).",
)
device_option = click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda", "mps"]),
    default="auto",
    show_default=True,
    help="Where the model runs; auto picks CUDA, then Apple MPS, then the CPU.",
)
backend_option = click.option(
    "--backend",
    type=click.Choice(["auto", "onnx", "torch"]),
    default="auto",
    show_default=True,
    help="What runs the model: auto uses torch on a GPU (when torch is installed) and ONNX Runtime on the "
    "CPU (no torch needed; the bundled model's graphs ship with photocap, another model's are exported "
    "once where torch is installed); onnx or torch ask for one.",
)
model_option = click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    default=None,
    help="A photocap model file (.safetensors). Default: the bundled model.",
)
batch_size_option = click.option(
    "--batch-size",
    type=click.IntRange(1, 1024),
    default=16,
    show_default=True,
    help="Images captioned per batch.",
)
workers_option = click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=None,
    help="Image decoding processes. Default: one per CPU (at most 8); 0 decodes in this process.",
)
beam_option = click.option(
    "--beam",
    type=click.IntRange(1, 20),
    default=None,
    help="Beam width for decoding (1 = greedy). Default: the model's own (3 for the bundled model).",
)
length_penalty_option = click.option(
    "--length-penalty",
    type=click.FloatRange(0.0, 2.0),
    default=None,
    help="Rank beams by log-prob / (words + 1) ** L; higher favours longer captions. "
    "Default: the model's own (chosen on its dev split).",
)
concept_force_option = click.option(
    "--concept-force",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Make the caption name the photo's top concept when the classifier is at least this sure "
    "(0 = never). Default: the model's own (chosen on its dev splits).",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per line, for scripts."
)


def resolve_db(db_path: Path | None) -> Path:
    from photocap.settings import default_db_path

    return db_path if db_path is not None else default_db_path()


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127, *range(0x80, 0xA0))}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def shown(text: str) -> str:
    """``text`` for a line of plain-text output: control characters (a newline or an escape
    sequence in a file name) shown escaped, so one line is one path and nothing drives the
    terminal. Programs that need the exact bytes use --json or --print0."""
    return text.translate(_CONTROL)


def has_control(text: str) -> bool:
    return shown(text) != text


def warn(message: str) -> None:
    click.echo(message, err=True)


def require_torch(command: str) -> None:
    """A clear error, not an import traceback, where a command needs PyTorch and it is not installed."""
    from photocap.captioner.graphs import torch_available

    if not torch_available():
        raise click.ClickException(f"photocap {command} needs PyTorch: pip install 'photocap[torch]'")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn photocap's own errors into click errors: a message, no traceback, exit 1."""
    try:
        yield
    except PhotocapError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
