"""``photocap write`` and ``photocap read``: captions in and out of photos' metadata."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from photocap.cli._common import db_option, echo_json, json_option, resolve_db, shown, user_errors, warn
from photocap.errors import PhotocapError
from photocap.records import FileOutcome, Outcome, SkipReason

WRITE_HELP_EPILOG = """
\b
Examples:
  photocap write ~/Pictures                  write every indexed caption under a folder
  photocap write photo.jpg --dry-run         show what would be written, change nothing
  photocap write raw/ --target sidecar       XMP sidecars only (photo.cr2.xmp)
  photocap write a.jpg --force --json        replace a human's description; JSON lines
  photocap write ~/Pictures --keywords       also add what the model sees ("cat", "sofa")
                                             to each photo's keywords
"""

READ_HELP_EPILOG = """
\b
Examples:
  photocap read photo.jpg                    the description fields and where they came from
  photocap read ~/Pictures --json            one JSON object per photo (keywords included)
"""


def _expand(paths: Iterable[Path], problems: list[tuple[str, str]] | None = None) -> Iterator[Path]:
    """The photos named and those under folders (the scan's rules; RAW and other
    sidecar-only formats included). What a folder holds that is named like a photo but is
    not one (a FIFO, a link to nothing) lands in ``problems`` as (path, reason)."""
    from photocap.library.scan import ScanStats, scan
    from photocap.metadata.containers import EMBED_SUFFIXES, SIDECAR_SUFFIXES
    from photocap.settings import IMAGE_SUFFIXES

    suffixes = IMAGE_SUFFIXES | EMBED_SUFFIXES | SIDECAR_SUFFIXES
    for path in paths:
        if path.is_dir():
            stats = ScanStats()
            yield from (Path(e.path) for e in scan([path], suffixes=suffixes, stats=stats))
            if problems is not None:
                problems.extend(stats.errors)
        else:
            yield path


def _describe(o: FileOutcome) -> str:
    """One line per write outcome."""
    report = o.write
    if o.outcome is Outcome.SKIPPED:
        return f"skipped  {shown(o.path)}: {shown(o.reason or '')}"
    assert report is not None
    where = shown((report.written_path if report.target == "sidecar" else o.path) or o.path)
    if report.dry_run:  # what would be written, not only where
        return (f"would write  {where}  ({report.target}: {', '.join(report.fields)})\n"
                f"    text: {shown(o.caption or '')}")
    return f"wrote  {where}  ({report.target}: {', '.join(report.fields)})"


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
@click.option(
    "--keywords",
    is_flag=True,
    help="Also add the photo's confident concepts (what the model sees: \"cat\", \"pizza\") to its "
    "keywords: XMP dc:subject, and IPTC Keywords where the photo has IPTC data. Keywords already "
    "there are kept first, in their order; none is added twice (ignoring case).",
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
    keywords: bool,
    as_json: bool,
) -> None:
    """Write the index's caption of each photo into its metadata.

    PATH may be photos or folders (every indexed photo under them).  The caption goes
    to XMP dc:description and Iptc4xmpCore:AltTextAccessibility, EXIF ImageDescription,
    and IPTC Caption-Abstract when the photo already has IPTC data.  Every other tag is
    kept, the image data is never re-encoded, and each file is replaced atomically after
    the result is verified.  The file records whose words the caption is (the model's or
    yours).  A person's description is left alone unless --force (one you saved through
    photocap is replaced only by your own captions); a model's caption photocap wrote
    earlier is updated in place.  The index then knows the photos as they are now, so the
    next `photocap index` reads none of them again.
    """
    from photocap.index.store import CaptionIndex
    from photocap.library import sync
    from photocap.library.summary import Tally, format_write_summary

    db = resolve_db(db_path)
    if not db.exists():
        raise click.ClickException(f"No index at {db}. Caption the photos first with `photocap index PATH`.")
    options = sync.WriteOptions(target=target, sidecar_name=sidecar_name, force=force,
                                keep_mtime=keep_mtime, dry_run=dry_run, windows_fields=windows_fields,
                                keywords=keywords)
    tally = Tally()
    tally.dry_run = dry_run

    def emit(o: FileOutcome) -> None:
        tally.add(o)
        if o.outcome is Outcome.FAILED:
            warn(f"error: {o.reason}")
        elif o.skip is SkipReason.NOT_INDEXED:
            warn(f"{shown(o.path)}: {o.reason}")
        if as_json:
            echo_json(o.to_dict())
        elif o.outcome is not Outcome.FAILED and o.skip is not SkipReason.NOT_INDEXED:
            click.echo(_describe(o))

    with user_errors(), CaptionIndex.open(db) as idx:
        roots = sync.library_roots(idx, paths)
        for root in roots:
            if os.path.isdir(root.path) and idx.count(root.path) == 0:
                warn(f"{root.alias or root.path}: no indexed photos under this folder")
        removed = sync.write_roots(idx, roots, options, emit)
    summary = tally.write_summary(temp_removed=removed)
    if summary.total == 0:
        raise click.ClickException("No photos to write.")
    warn(format_write_summary(summary))
    if summary.failed + summary.not_indexed == summary.total:
        raise SystemExit(1)


_OWNERS = {
    "person": "a person's words (not written by photocap)",
    "photocap-user": "your words, written by photocap",
    "photocap-model": "a model's caption, written by photocap",
    "stock": "not a person's words",
}


def _show(report: Any) -> None:
    kind = f"{report.format}, {'embeddable' if report.embeddable else 'sidecar only'}"
    click.echo(f"{report.path}  ({kind})")
    if report.caption is not None:
        click.echo(f"  caption: {report.caption!r}")
        click.echo(f"    from {report.caption_tag} ({report.caption_location}), "
                   f"{_OWNERS[str(report.caption_owner)]}")
    else:
        click.echo("  caption: none")
    for value in report.values:
        owner = {"photocap-user": "photocap/you", "photocap-model": "photocap/model",
                 "stock": f"stock ({value.stock})"}.get(str(value.owner), "person")
        click.echo(f"  {value.tag:36} {value.location:9} {owner:16} {value.value!r}")
    if report.keywords:
        click.echo(f"  keywords: {', '.join(report.keywords)}")
    for kv in report.keyword_values:
        click.echo(f"  {kv.tag:36} {kv.location:9} {', '.join(kv.values)}")
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
    from, whether photocap or someone else wrote it, and its keywords (XMP dc:subject,
    IPTC Keywords).  PATH may be photos or folders.
    """
    from photocap.metadata.reader import read_metadata

    total = failed = 0
    problems: list[tuple[str, str]] = []

    def fail(path: str, reason: str) -> None:
        warn(f"error: {reason}")
        if as_json:
            echo_json({"path": path, "error": reason})

    for path in _expand(paths, problems):
        total += 1
        try:
            report = read_metadata(path)
        except PhotocapError as exc:
            failed += 1
            fail(str(path), str(exc))
            continue
        if as_json:
            echo_json(report.to_dict())
        else:
            _show(report)
    for path, reason in problems:
        total += 1
        failed += 1
        fail(path, f"{path}: {reason}")
    if total == 0:
        raise click.ClickException("No photos found.")
    if failed == total:
        raise SystemExit(1)
