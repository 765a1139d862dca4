"""``photocap write`` and ``photocap read``: captions in and out of photos' metadata."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from photocap.cli._common import db_option, echo_json, json_option, resolve_db, user_errors, warn
from photocap.errors import PhotocapError

WRITE_HELP_EPILOG = """
\b
Examples:
  photocap write ~/Pictures                  write every indexed caption under a folder
  photocap write photo.jpg --dry-run         show what would be written, change nothing
  photocap write raw/ --target sidecar       XMP sidecars only (photo.cr2.xmp)
  photocap write a.jpg --force --json        replace a human's description; JSON lines
"""

READ_HELP_EPILOG = """
\b
Examples:
  photocap read photo.jpg                    the description fields and where they came from
  photocap read ~/Pictures --json            one JSON object per photo
"""


def _walk(folder: Path) -> Iterator[Path]:
    """Photos under a folder (sorted, hidden entries and sidecars skipped)."""
    from photocap.metadata.containers import EMBED_SUFFIXES, SIDECAR_SUFFIXES
    from photocap.settings import IMAGE_SUFFIXES

    suffixes = IMAGE_SUFFIXES | EMBED_SUFFIXES | SIDECAR_SUFFIXES
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in suffixes:
                yield Path(root) / name


def _expand(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from _walk(path)
        else:
            yield path


def _records(db_path: Path | None, paths: tuple[Path, ...]) -> list[tuple[Path, Any]]:
    """(path, PhotoRecord or None) for every file named and every indexed photo under a folder."""
    from photocap.index.store import CaptionIndex

    db = resolve_db(db_path)
    if not db.exists():
        raise click.ClickException(
            f"No index at {db}. Caption the photos first with `photocap index PATH`."
        )
    found: list[tuple[Path, Any]] = []
    with CaptionIndex.open(db) as idx:
        for path in paths:
            if path.is_dir():
                records = list(idx.iter_photos(under=path.resolve()))
                if not records:
                    warn(f"{path}: no indexed photos under this folder")
                found += [(Path(r.path), r) for r in records]
            else:
                found.append((path, idx.get(path.resolve())))
    return found


def _describe(report: Any) -> str:
    if report.skipped:
        return f"skipped  {report.path}: {report.skipped}"
    verb = "would write" if report.dry_run else "wrote"
    where = report.written_path if report.target == "sidecar" else report.path
    tags = ", ".join(report.fields)
    return f"{verb}  {where}  ({report.target}: {tags})"


@click.command(epilog=WRITE_HELP_EPILOG)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@db_option
@click.option(
    "--target",
    type=click.Choice(["auto", "embed", "sidecar"]),
    default="auto",
    show_default=True,
    help="auto: embed into JPEG, PNG, TIFF and WebP files where that is safe, an XMP sidecar "
    "otherwise (HEIC, RAW, GIF, BMP, read-only files or folders). embed/sidecar: only that.",
)
@click.option(
    "--sidecar-name",
    type=click.Choice(["ext", "base"]),
    default="ext",
    show_default=True,
    help="Sidecar naming: ext = photo.jpg.xmp, base = photo.xmp. An existing sidecar of "
    "either name is merged into.",
)
@click.option(
    "--force", is_flag=True, help="Replace a description someone else wrote (kept by default)."
)
@click.option("--dry-run", is_flag=True, help="Show what would be written; change nothing.")
@click.option(
    "--keep-mtime/--no-keep-mtime",
    default=True,
    show_default=True,
    help="Keep each file's modification time, so other tools' incremental scans are not "
    "triggered by a description change alone.",
)
@click.option(
    "--windows-fields",
    is_flag=True,
    help="Also write EXIF XPComment and UserComment (for Windows-oriented tools).",
)
@json_option
def write(
    paths: tuple[Path, ...],
    db_path: Path | None,
    target: str,
    sidecar_name: str,
    force: bool,
    dry_run: bool,
    keep_mtime: bool,
    windows_fields: bool,
    as_json: bool,
) -> None:
    """Write the index's caption of each photo into its metadata.

    PATH may be photos or folders (every indexed photo under them).  The caption goes
    to XMP dc:description and Iptc4xmpCore:AltTextAccessibility, EXIF ImageDescription,
    and IPTC Caption-Abstract when the photo already has IPTC data.  Every other tag is
    kept, the image data is never re-encoded, and each file is replaced atomically after
    the result is verified.  A description written by a person is left alone unless
    --force; one photocap wrote earlier is updated in place.
    """
    from photocap.metadata.writer import write_caption

    with user_errors():
        records = _records(db_path, paths)
    if not records:
        raise click.ClickException("No photos to write.")
    written = skipped = failed = 0
    for path, record in records:
        try:
            if record is None:
                raise PhotocapError(f"{path}: not in the index; run `photocap index` first")
            if not record.caption:
                skipped += 1
                if as_json:
                    echo_json({"path": str(path), "target": "none", "skipped": "no caption yet"})
                else:
                    click.echo(f"skipped  {path}: no caption yet")
                continue
            report = write_caption(
                record.path,
                record.caption,
                target=target,
                sidecar_name=sidecar_name,
                force=force,
                keep_mtime=keep_mtime,
                dry_run=dry_run,
                write_windows_fields=windows_fields,
            )
        except PhotocapError as exc:
            failed += 1
            warn(f"error: {exc}")
            if as_json:
                echo_json({"path": str(path), "error": str(exc)})
            continue
        if report.skipped:
            skipped += 1
        else:
            written += 1
        if as_json:
            echo_json(report.to_dict())
        else:
            click.echo(_describe(report))
    verb = "would write" if dry_run else "written"
    warn(f"{written} {verb}, {skipped} skipped, {failed} failed")
    if failed and failed == len(records):
        raise SystemExit(1)


def _show(report: Any) -> None:
    kind = f"{report.format}, {'embeddable' if report.embeddable else 'sidecar only'}"
    click.echo(f"{report.path}  ({kind})")
    if report.caption is not None:
        who = (
            f"written by {report.photocap_source or 'photocap'}"
            if report.written_by_photocap
            else "not written by photocap"
        )
        click.echo(f"  caption: {report.caption!r}")
        click.echo(f"    from {report.caption_tag} ({report.caption_location}), {who}")
    else:
        click.echo("  caption: none")
    for value in report.values:
        owner = "photocap" if value.by_photocap else ("placeholder" if value.placeholder else "other")
        click.echo(f"  {value.tag:36} {value.location:9} {owner:11} {value.value!r}")
    if report.sidecar:
        click.echo(f"  sidecar: {report.sidecar}")
    for message in report.warnings:
        click.echo(f"  warning: {message}")


@click.command(epilog=READ_HELP_EPILOG)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@json_option
def read(paths: tuple[Path, ...], as_json: bool) -> None:
    """Show the description fields photocap finds in photos and their XMP sidecars.

    For each photo: every description/alt-text tag found, which one a caption would come
    from, and whether photocap or someone else wrote it.  PATH may be photos or folders.
    """
    from photocap.metadata.reader import read_metadata

    total = failed = 0
    for path in _expand(paths):
        total += 1
        try:
            report = read_metadata(path)
        except PhotocapError as exc:
            failed += 1
            warn(f"error: {exc}")
            if as_json:
                echo_json({"path": str(path), "error": str(exc)})
            continue
        if as_json:
            echo_json(report.to_dict())
        else:
            _show(report)
    if total == 0:
        raise click.ClickException("No photos found.")
    if failed == total:
        raise SystemExit(1)
