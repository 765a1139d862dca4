"""The PyInstaller entry script of the bundle's command-line program (packaging/photocap-gui.spec)."""

from photocap.cli import cli

cli(prog_name="photocap")
