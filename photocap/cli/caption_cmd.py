"""``photocap caption``: caption files without touching the index."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from photocap.cli._common import (
    backend_option, batch_size_option, beam_option, concept_force_option, device_option, echo_json, json_option,
    length_penalty_option, model_option, user_errors, warn,
)


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    """Files as given, folders walked for image files by the library's scan rules (hidden ones skipped)."""
    from photocap.library.scan import scan

    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(Path(e.path) for e in scan([path]))
        else:
            out.append(path)
    return out


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
@beam_option
@length_penalty_option
@concept_force_option
@click.option("--concepts", "show_concepts", is_flag=True,
              help="Also print each photo's concepts (what the ImageNet classifier sees) as a third column.")
@batch_size_option
@device_option
@backend_option
@model_option
def caption(paths: tuple[Path, ...], as_json: bool, beam: int | None, length_penalty: float | None,
            concept_force: float | None, show_concepts: bool, batch_size: int, device: str, backend: str,
            model_path: Path | None) -> None:
    """Caption image files (or folders, recursively) and print the captions.

    Prints ``path<TAB>caption`` per image (``--concepts`` adds a third column,
    ``word score, ...``); with --json, one object per line with path, caption,
    score (mean log-probability per word), model and concepts (word and score,
    best first). Files that are not readable images are reported on stderr and
    skipped.

    \b
    Examples:
      photocap caption holiday.jpg
      photocap caption ~/Pictures/2024 --json > captions.jsonl
      photocap caption *.jpg --concepts
      photocap caption *.jpg --beam 5 --device cpu
    """
    from photocap.records import CaptionFailure

    files = _expand(paths)
    if not files:
        raise click.ClickException("no image files found in the given paths")
    with user_errors():
        from photocap.captioner import Captioner

        captioner = Captioner(model_path, device=device, beam=beam, length_penalty=length_penalty,
                              concept_force=concept_force, backend=backend)
        ok = failed = 0
        for result in captioner.caption_paths(files, batch_size=batch_size):
            if isinstance(result, CaptionFailure):
                failed += 1
                warn(f"photocap: skipped {result.path}: {result.reason}")
                continue
            ok += 1
            if as_json:
                echo_json(result.to_dict())
            elif show_concepts:
                listed = ", ".join(f"{c.word} {c.score:.2f}" for c in result.concepts)
                click.echo(f"{result.path}\t{result.caption}\t{listed}")
            else:
                click.echo(f"{result.path}\t{result.caption}")
    if ok == 0:
        warn(f"photocap: none of the {failed} file(s) could be captioned")
        sys.exit(1)
