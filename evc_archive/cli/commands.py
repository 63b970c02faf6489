"""Importing this module registers every command on the app, in the order `--help` lists them."""
# ruff: noqa: I001, F401

from evc_archive.cli import stream_commands
from evc_archive.cli import archive_commands
from evc_archive.cli import compare_command
