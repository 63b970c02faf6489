"""Corpus sources: folder, glob, fsspec URL prefix, input manifest (Parquet/CSV with a `uri` column)."""

from __future__ import annotations

import uuid

import fsspec
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from evc_archive.core.errors import EVCError
from evc_archive.io.sources import content_fingerprint, list_sources, open_source


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    (root / "sub" / "deeper").mkdir(parents=True)
    for rel in ["b.mp4", "a.MKV", "sub/c.webm", "sub/deeper/d.y4m", "notes.txt", "cover.jpg", "sub/e.mov"]:
        (root / rel).write_bytes(rel.encode())
    (root / "folder.mp4").mkdir()  # a directory named like a video is not a source
    (root / "folder.mp4" / "inner.mkv").write_bytes(b"inner")  # but a video inside it is
    return root


def test_folder_lists_videos_recursively_sorted(corpus):
    got = list_sources(str(corpus))
    rel = [u[len(str(corpus)) + 1:] for u in got]
    assert rel == ["a.MKV", "b.mp4", "folder.mp4/inner.mkv", "sub/c.webm", "sub/deeper/d.y4m", "sub/e.mov"]
    assert list_sources(f"file://{corpus}") == got  # a file:// URL gives plain local paths
    assert list_sources(str(corpus) + "/") == got


def test_glob_gives_exactly_the_files_it_names(corpus):
    got = list_sources(str(corpus / "*.mp4"))
    assert got == [str(corpus / "b.mp4")]  # the directory folder.mp4 is not a file
    assert list_sources(str(corpus / "**" / "*.webm")) == [str(corpus / "sub" / "c.webm")]
    assert list_sources(str(corpus / "*.avi")) == []


def test_single_file(corpus):
    assert list_sources(str(corpus / "notes.txt")) == [str(corpus / "notes.txt")]  # named explicitly


def test_file_names_with_glob_characters(tmp_path):
    """An existing file or folder is taken literally even when its name looks like a glob."""
    (tmp_path / "clip[1].mp4").write_bytes(b"the one")
    (tmp_path / "clip1.mp4").write_bytes(b"the other")
    assert list_sources(str(tmp_path / "clip[1].mp4")) == [str(tmp_path / "clip[1].mp4")]
    (tmp_path / "run[2]").mkdir()
    (tmp_path / "run[2]" / "x.mp4").write_bytes(b"x")
    assert list_sources(str(tmp_path / "run[2]")) == [str(tmp_path / "run[2]" / "x.mp4")]
    assert list_sources(str(tmp_path / "clip?.mp4")) == [str(tmp_path / "clip1.mp4")]  # still a glob


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(EVCError, match="does not exist") as info:
        list_sources(str(tmp_path / "nope"))
    assert "\n" not in str(info.value)


def test_url_prefix_on_memory_store():
    base = f"memory://evc-src-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("memory")
    for rel in ["videos/x.mp4", "videos/y/z.mkv", "videos/readme.md", "other/w.mp4"]:
        fs.pipe(f"{base}/{rel}", rel.encode())
    got = list_sources(f"{base}/videos/")
    assert got == [f"memory:///{base[9:]}/videos/x.mp4", f"memory:///{base[9:]}/videos/y/z.mkv"]
    # what is listed can be opened and fingerprinted again
    assert open_source(got[0]).read() == b"videos/x.mp4"
    assert content_fingerprint(got[0]) == content_fingerprint(f"{base}/videos/x.mp4")


def write_manifest(path, uris, column="uri"):
    table = pa.table({column: uris, "note": [f"n{i}" for i in range(len(uris))]})
    if str(path).lower().endswith(".csv"):
        pcsv.write_csv(table, str(path))
    else:
        pq.write_table(table, str(path))
    return str(path)


@pytest.mark.parametrize("ext", [".parquet", ".csv", ".CSV"])
def test_input_manifest_gives_exactly_its_uris(tmp_path, ext):
    uris = [str(tmp_path / "z.mp4"), "s3://bucket/a.mp4", str(tmp_path / "missing.mp4"), "", None]
    src = write_manifest(tmp_path / f"list{ext}", uris)
    assert list_sources(src) == uris[:3]  # in the given order; empty entries dropped; not checked here


def test_input_manifest_lists_each_uri_once(tmp_path):
    uris = ["/v/b.mp4", "/v/a.mp4", "/v/b.mp4", "/v/a.mp4", "/v/c.mp4"]
    assert list_sources(write_manifest(tmp_path / "dup.csv", uris)) == ["/v/b.mp4", "/v/a.mp4", "/v/c.mp4"]


def test_input_manifest_without_uri_column(tmp_path):
    src = write_manifest(tmp_path / "list.parquet", ["a.mp4"], column="path")
    with pytest.raises(EVCError, match="no 'uri' column.*path, note"):
        list_sources(src)


def test_unreadable_input_manifest(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(EVCError, match="broken.parquet") as info:
        list_sources(str(tmp_path / "broken.parquet"))
    assert "\n" not in str(info.value)
    with pytest.raises(EVCError, match="gone.csv"):
        list_sources(str(tmp_path / "gone.csv"))
