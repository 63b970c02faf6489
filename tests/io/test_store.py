"""The archive store: fsspec URLs, atomic writes, one clear StoreError for unusable locations."""

from __future__ import annotations

import uuid

import pytest

from evc_archive.core.errors import EVCError
from evc_archive.io.store import Store, StoreError


def leftovers(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".part" in p.name or ".evc-write-probe" in p.name)


def test_local_bytes_json_list_size(tmp_path):
    store = Store(str(tmp_path / "arch"))
    assert store.is_local and store.shared_across_processes
    store.write_bytes("segments/v-1/000000.evc", b"abc")
    store.write_bytes("segments/v-1/000001.evc", b"defg")
    store.write_json("archive.json", {"b": 1, "a": [1, 2]})
    assert store.read_bytes("segments/v-1/000001.evc") == b"defg"
    assert store.read_json("archive.json") == {"a": [1, 2], "b": 1}
    assert store.size("segments/v-1/000000.evc") == 3 and store.size("nope") is None
    assert store.exists("archive.json") and not store.exists("nope")
    assert store.list("segments") == ["segments/v-1/000000.evc", "segments/v-1/000001.evc"]
    assert store.list("missing") == []
    assert (tmp_path / "arch" / "segments" / "v-1" / "000000.evc").read_bytes() == b"abc"
    assert leftovers(tmp_path) == []
    # file:// URLs name the same place
    assert Store(f"file://{tmp_path}/arch").read_bytes("segments/v-1/000000.evc") == b"abc"


def test_overwrite_replaces_whole_object(tmp_path):
    store = Store(str(tmp_path))
    store.write_bytes("k", b"x" * 1000)
    store.write_bytes("k", b"short")
    assert store.read_bytes("k") == b"short"
    assert leftovers(tmp_path) == []


def test_failed_write_leaves_old_object_and_no_temp(tmp_path, monkeypatch):
    """A write that dies midway never shows a partial object: the old one stays, the temp goes."""
    store = Store(str(tmp_path))
    store.write_bytes("seg.evc", b"old complete object")
    real_open = store.fs.open

    class Dying:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError("disk full")

    monkeypatch.setattr(store.fs, "open", lambda path, mode="rb", **kw: Dying(real_open(path, mode, **kw)))
    with pytest.raises(OSError, match="disk full"):
        store.write_bytes("seg.evc", b"new object that never lands")
    with pytest.raises(OSError):
        store.write_bytes("fresh.evc", b"never visible")
    monkeypatch.undo()
    assert store.read_bytes("seg.evc") == b"old complete object"
    assert not store.exists("fresh.evc")
    assert leftovers(tmp_path) == []


def test_missing_key_is_a_store_error_naming_it(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(StoreError, match="segments/x/000000.evc") as info:
        store.read_bytes("segments/x/000000.evc")
    assert isinstance(info.value, EVCError)


def test_check_writable_creates_root_and_leaves_nothing(tmp_path):
    root = tmp_path / "new" / "archive"
    Store(str(root)).check_writable()
    assert root.is_dir() and list(root.iterdir()) == []


def test_check_writable_under_a_regular_file_is_one_clear_error(tmp_path):
    (tmp_path / "file.txt").write_text("I am a file")
    url = str(tmp_path / "file.txt" / "archive")
    with pytest.raises(StoreError) as info:
        Store(url).check_writable()
    text = str(info.value)
    assert url in text and "\n" not in text and "Traceback" not in text
    assert text.startswith("cannot write to archive location")
    assert (tmp_path / "file.txt").read_text() == "I am a file"


def test_unknown_protocol_is_a_store_error():
    with pytest.raises(StoreError, match="nosuchproto://x"):
        Store("nosuchproto://x/archive")


def test_memory_store_is_process_local():
    url = f"memory://evc-test-{uuid.uuid4().hex[:8]}/arch"
    store = Store(url)
    assert not store.shared_across_processes and not store.is_local
    store.check_writable()
    store.write_bytes("a/b.evc", b"1")
    assert Store(url).read_bytes("a/b.evc") == b"1"  # same process, same store
    assert store.list("") == ["a/b.evc"]  # the write probe is gone
