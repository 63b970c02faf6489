"""Archive storage on any fsspec URL (file://, plain paths, s3://, gs://, memory://, ...).

Writes are atomic: on a local file system the bytes go to a temporary name and are renamed into
place; on object stores a single PUT is already atomic (the object appears whole or not at all),
so the bytes are written to their key directly. Readers never see a partial object.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from dataclasses import dataclass, field
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from evc_archive.core.errors import EVCError


class StoreError(EVCError):
    """The archive location cannot be used (missing bucket, no permission, bad URL, ...)."""


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text[:200]


@dataclass
class Store:
    """One archive root: keys are '/'-separated paths below it."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        except (ImportError, ValueError, TypeError) as exc:
            raise StoreError(f"cannot open archive location '{self.url}': {_reason(exc)}") from None
        self.root = self.root.rstrip("/")

    # -- properties ------------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    @property
    def shared_across_processes(self) -> bool:
        """False for fsspec's in-memory store, which lives inside one process: Ray workers cannot
        see it, so the pipeline routes their writes through the driver."""
        return not isinstance(self.fs, MemoryFileSystem)

    def path(self, key: str) -> str:
        return posixpath.join(self.root, key) if key else self.root

    # -- checks ----------------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Write, read back and delete a probe object: one clear error before any work."""
        key = f".evc-write-probe-{uuid.uuid4().hex[:8]}"
        try:
            if self.is_local:
                self.fs.makedirs(self.root, exist_ok=True)
            self.write_bytes(key, b"ok")
            if self.read_bytes(key) != b"ok":
                raise StoreError(f"archive location '{self.url}' did not return what was written to it")
            self.fs.rm(self.path(key))
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - credentials, missing bucket, permissions, network
            raise StoreError(f"cannot write to archive location '{self.url}': {_reason(exc)}") from None

    # -- bytes -----------------------------------------------------------------------------------
    def write_bytes(self, key: str, data: bytes) -> None:
        """Atomic write of one object."""
        path = self.path(key)
        if self.is_local:
            parent = posixpath.dirname(path)
            self.fs.makedirs(parent, exist_ok=True)
            temp = posixpath.join(parent, f".{posixpath.basename(path)}.{uuid.uuid4().hex[:12]}.part")
            try:
                with self.fs.open(temp, "wb") as f:
                    f.write(data)
                self.fs.mv(temp, path)
            finally:
                if self.fs.exists(temp):
                    self.fs.rm(temp)
        else:
            self.fs.pipe_file(path, data)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            raise StoreError(f"'{key}' is missing from archive '{self.url}'") from None

    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key))

    def size(self, key: str) -> int | None:
        try:
            return int(self.fs.size(self.path(key)))
        except FileNotFoundError:
            return None

    def list(self, prefix: str) -> list[str]:
        """Keys below prefix (recursive), relative to the root, sorted."""
        base = self.path(prefix)
        if not self.fs.exists(base):
            return []
        found = self.fs.find(base)
        root = self.root + "/"
        return sorted(p[len(root):] if p.startswith(root) else p for p in found)

    def write_json(self, key: str, value: Any) -> None:
        self.write_bytes(key, json.dumps(value, indent=1, sort_keys=True).encode())

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))
