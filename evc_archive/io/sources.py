"""Corpus sources: a local folder, a glob, an fsspec URL prefix or an input manifest (Parquet/CSV
with a `uri` column) -> a sorted list of source URIs; and the content fingerprint that names a
video in the archive."""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath
from typing import Any

import fsspec

from evc_archive.core.errors import EVCError

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".y4m", ".m4v", ".mpg", ".mpeg", ".ts", ".flv",
                    ".wmv", ".3gp", ".ogv", ".mxf", ".h264", ".hevc", ".ivf"}
FINGERPRINT_CHUNK = 1 << 20


def _join(protocol: str | tuple, path: str) -> str:
    proto = protocol[0] if isinstance(protocol, (tuple, list)) else protocol
    return path if proto in ("file", "local") else f"{proto}://{path}"


def list_sources(src: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Expand SRC into source URIs. Folders and URL prefixes give their video files (by
    extension, recursively); globs and input manifests give exactly what they name."""
    opts = storage_options or {}
    lower = src.lower()
    try:
        if lower.endswith((".parquet", ".csv")):
            return _from_manifest(src, opts)
        fs, path = fsspec.core.url_to_fs(src, **opts)
        if fs.isfile(path):  # before the glob test: 'clip[1].mp4' names that file, not 'clip1.mp4'
            return [_join(fs.protocol, path)]
        if any(ch in path for ch in "*?[") and not fs.isdir(path):
            return sorted(_join(fs.protocol, p) for p in fs.glob(path) if fs.isfile(p))
        if not fs.exists(path):
            raise EVCError(f"source '{src}' does not exist")
        found = [p for p in fs.find(path) if PurePosixPath(p).suffix.lower() in VIDEO_EXTENSIONS]
        return sorted(_join(fs.protocol, p) for p in found)
    except EVCError:
        raise
    except Exception as exc:  # noqa: BLE001 - missing bucket, credentials, network
        raise EVCError(f"cannot list source '{src}': {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _from_manifest(src: str, opts: dict[str, Any]) -> list[str]:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    with fsspec.open(src, "rb", **opts) as f:
        table = (pq.ParquetFile(f).read(use_threads=False) if src.lower().endswith(".parquet")  # see io.manifest
                 else pcsv.read_csv(f))
    if "uri" not in table.column_names:
        raise EVCError(f"input manifest '{src}' has no 'uri' column (columns: {', '.join(table.column_names)})")
    return list(dict.fromkeys(u for u in table.column("uri").to_pylist() if u))  # in order, each once


def open_source(uri: str, storage_options: dict[str, Any] | None = None):
    """A local path as is (PyAV seeks it directly), anything else as an open fsspec binary file."""
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    if "file" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)):
        return path
    return fs.open(path, "rb")


def content_fingerprint(uri: str, storage_options: dict[str, Any] | None = None) -> str:
    """sha256 hex of (size, first MiB, last MiB): names a video by its content, cheaply, on any store."""
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    size = int(fs.size(path))
    h = hashlib.sha256(str(size).encode())
    with fs.open(path, "rb") as f:
        h.update(f.read(FINGERPRINT_CHUNK))
        if size > FINGERPRINT_CHUNK:
            f.seek(max(FINGERPRINT_CHUNK, size - FINGERPRINT_CHUNK))
            h.update(f.read(FINGERPRINT_CHUNK))
    return h.hexdigest()


def video_id_for(uri: str, fingerprint: str) -> str:
    """'<file stem, safe>-<12 hex of the fingerprint>': readable and content-derived."""
    stem = PurePosixPath(uri.rstrip("/")).stem or "video"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:48].strip("._") or "video"
    return f"{stem}-{fingerprint[:12]}"
