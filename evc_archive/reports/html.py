"""Self-contained HTML: Jinja2 templates shipped in the package, images as data URIs, Markdown
(model cards) rendered with markdown-it. Nothing on the page fetches anything."""

from __future__ import annotations

import base64
import datetime as dt
from functools import lru_cache

import jinja2
from markdown_it import MarkdownIt

from evc_archive import __version__


def data_uri(png: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(png).decode('ascii')}"


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown(text: str | None) -> str:
    """Markdown -> HTML (raw HTML in the source is escaped, not passed through)."""
    return _markdown().render(text or "")


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("evc_archive.reports", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    env.filters["markdown"] = markdown
    return env


def render(template: str, context: dict) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _environment().get_template(template).render(**context, generated_at=stamp, version=__version__)
