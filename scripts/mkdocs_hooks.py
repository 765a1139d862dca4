"""MkDocs hooks: what the docs show that the code already says is generated from the code.

A page asks for it with an HTML comment on a line of its own:

* ``<!-- photocap:fields-table -->``: the metadata fields table, from ``photocap/metadata/fields.py``
  (the table the writer and the reader consult), so the docs cannot drift from what is written.
* ``<!-- photocap:help index -->`` (or ``db status``): that command's ``--help``, from the click
  command itself.
* ``<!-- photocap:include CHANGELOG.md -->``: a Markdown file that lives outside docs/ (the
  changelog, the model card that ships with the model), included rather than copied, its
  relative links rewritten to the site's pages.

The photocap of this checkout is imported (the repository root goes first on ``sys.path``), so
the site shows the code it was built from, installed or not. An unknown placeholder or command
fails the build.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

PLACEHOLDER = re.compile(r"^<!-- photocap:(?P<what>[\w-]+)(?P<args>[^>]*?) -->$", re.M)

KIND_NAMES = {"jpeg": "JPEG", "png": "PNG", "tiff": "TIFF", "webp": "WebP", "sidecar": "XMP sidecar"}


def on_config(config, **kwargs):
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def _kinds(kinds) -> str:
    return ", ".join(name for kind, name in KIND_NAMES.items() if kind in kinds)


def _when(spec, fields, *, keyword: bool) -> str:
    parts = []
    if keyword:
        parts.append("only with `--keywords`")
    if spec.mode == fields.IF_PRESENT:
        parts.append("only where the file already has that block")
    elif spec.mode == fields.OPTIONAL:
        parts.append("only with `--windows-fields`")
    for kind in sorted(spec.if_present_kinds):
        parts.append(f"{KIND_NAMES[kind]} only if it already has that block")
    return "; ".join(parts) or "always"


def fields_table() -> str:
    from photocap.metadata import fields

    rows = ["| read order | tag (exiftool `-G1` name) | written to | when | why |",
            "| ---: | --- | --- | --- | --- |"]
    for n, spec in enumerate(fields.CAPTION_TAGS, 1):
        rows.append(f"| {n} | `{spec.name}` | {_kinds(spec.kinds | spec.if_present_kinds)} "
                    f"| {_when(spec, fields, keyword=False)} | {spec.why} |")
    rows += ["", "Keywords (`--keywords`): added after the ones already there, never removed or reordered.", "",
             "| tag | written to | when | why |", "| --- | --- | --- | --- |"]
    for spec in fields.KEYWORD_TAGS:
        rows.append(f"| `{spec.name}` | {_kinds(spec.kinds | spec.if_present_kinds)} "
                    f"| {_when(spec, fields, keyword=True)} | {spec.why} |")
    rows += ["", "Provenance, written wherever the caption goes as XMP (namespace "
             f"`{fields.NS_PHOTOCAP}`; `xmp:CreatorTool` is never touched):", "",
             "| tag | XMP property |", "| --- | --- |"]
    for name in fields.PROVENANCE_TAGS:
        prop = fields.XMP_PROPERTIES[name]
        rows.append(f"| `{name}` | `{fields.PREFERRED_PREFIXES[prop.namespace]}:{prop.local}` |")
    return "\n".join(rows)


def command_help(words: list[str]) -> str:
    import click

    from photocap.cli import RENAMED, cli

    ctx = click.Context(cli, info_name="photocap", max_content_width=96, terminal_width=96)
    command = cli
    for word in words:
        if command is cli and word in RENAMED:
            raise ValueError(f"'photocap {word}' is an old name: show 'photocap {RENAMED[word]}'")
        sub = command.get_command(ctx, word) if isinstance(command, click.Group) else None
        if sub is None:
            raise ValueError(f"no command 'photocap {' '.join(words)}'")
        ctx = click.Context(sub, info_name=word, parent=ctx, max_content_width=96, terminal_width=96)
        command = sub
    line = ' '.join(['photocap', *words, '--help'])
    return f"```text\n$ {line}\n{command.get_help(ctx)}\n```"


LINK = re.compile(r"(\]\()([^)#\s]+)((?:#[^)\s]*)?\))")
# Files outside docs/ that the site shows as pages of its own.
INCLUDED_AS = {"models/MODEL_CARD.md": "model-card.md", "CHANGELOG.md": "changelog.md"}


def include(name: str, page, root: Path) -> str:
    """A Markdown file from outside docs/, its relative links rewritten to work from ``page``."""
    source = (root / name).resolve()
    text = source.read_text(encoding="utf-8")
    page_dir = (Path(page.file.src_path).parent)

    def relink(m: re.Match) -> str:
        target = m[2]
        if "://" in target or target.startswith("mailto:"):
            return m[0]
        in_repo = (source.parent / target).resolve().relative_to(root).as_posix()
        if in_repo in INCLUDED_AS:
            in_docs = INCLUDED_AS[in_repo]
        elif in_repo.startswith("docs/"):
            in_docs = in_repo.removeprefix("docs/")
        else:
            raise ValueError(f"{name} links to {target}, which is not part of the site")
        return f"{m[1]}{os.path.relpath(in_docs, page_dir.as_posix() or '.')}{m[3]}"

    return LINK.sub(relink, text)


def _replace(match: re.Match, page, root: Path) -> str:
    what, args = match["what"], match["args"].split()
    if what == "fields-table" and not args:
        return fields_table()
    if what == "include" and len(args) == 1:
        return include(args[0], page, root)
    if what == "help":
        return command_help(args)
    raise ValueError(f"{page.file.src_path}: unknown placeholder {match[0]!r}")


def on_page_markdown(markdown: str, page, config, **kwargs) -> str:
    root = Path(config.config_file_path).resolve().parent
    return PLACEHOLDER.sub(lambda m: _replace(m, page, root), markdown)
