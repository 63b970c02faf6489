"""The `evc-archive` command line: `app` with every command registered, and `main`."""

from evc_archive.cli import commands  # noqa: F401 - registers the commands
from evc_archive.cli.app import app, main

__all__ = ["app", "main"]
