"""The ``photocap`` command line: a thin click layer over the library.

Commands live in their own modules and are imported only when run, so a fast
command such as ``photocap search`` never pays for torch or Qt.
"""

from __future__ import annotations

import importlib
import warnings

import click

from photocap.errors import BackendFallbackWarning, EmbeddingHeadWarning

# command name -> "module:attribute", imported on first use.
COMMANDS = {
    "caption": "photocap.cli.caption_cmd:caption",
    "index": "photocap.cli.index_cmd:index",
    "search": "photocap.cli.index_cmd:search",
    "prune": "photocap.cli.index_cmd:prune",
    "db": "photocap.cli.index_cmd:db",
    "write": "photocap.cli.metadata_cmd:write",
    "read": "photocap.cli.metadata_cmd:read",
    "set-caption": "photocap.cli.edit_cmd:set_caption",
    "clear-caption": "photocap.cli.edit_cmd:clear_caption",
    "watch": "photocap.cli.watch_cmd:watch",
    "train": "photocap.cli.train_cmd:train",
    "evaluate": "photocap.cli.train_cmd:evaluate",
    "train-embedding": "photocap.cli.embedding_cmd:train_embedding",
    "export-graphs": "photocap.cli.export_cmd:export_graphs",
    "gui": "photocap.cli.gui_cmd:gui",
}

# A command's old name -> its name now: the old one still runs the command, says so on stderr,
# and is left out of ``photocap --help``.
RENAMED = {
    "train-pixels": "train-embedding",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported when they are invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        if name in RENAMED:
            click.echo(f"`photocap {name}` is now `photocap {RENAMED[name]}`; the old name will go", err=True)
        return name, command, rest

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(RENAMED.get(cmd_name, cmd_name))
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """photocap's own warnings as a plain line (no file name or source line); others as Python prints them."""
    if issubclass(category, (BackendFallbackWarning, EmbeddingHeadWarning)):
        return f"{message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


_python_format_warning = warnings.formatwarning


@click.group(cls=LazyGroup)
@click.version_option(package_name="photocap")
def cli() -> None:
    """Caption photo libraries offline, search them, and write captions into photos.

    \b
    Examples:
      photocap index ~/Pictures          caption a library into the index
      photocap search "dog on a beach"   find photos by caption
      photocap caption photo.jpg         caption files without indexing
      photocap write ~/Pictures          write captions into the photos' metadata
      photocap set-caption "Mum" a.jpg   your own caption for a photo
    """
    warnings.formatwarning = _format_warning
