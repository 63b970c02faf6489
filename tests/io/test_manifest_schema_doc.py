"""The documented manifest schema (manifests/schema_v<N>.json, manifests/v<N>.md) matches the code's
SCHEMA. A schema change without the doc fails here: run `python manifests/export_schema.py` (and, for
a new SCHEMA_VERSION, write manifests/v<N>.md first)."""

import json
from pathlib import Path

import pytest

from evc_archive.io.manifest import SCHEMA, SCHEMA_VERSION

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
FIX = "the manifest schema changed without its doc: run `python manifests/export_schema.py`"


@pytest.fixture(scope="module")
def documented() -> dict:
    path = MANIFESTS / f"schema_v{SCHEMA_VERSION}.json"
    assert path.is_file(), f"{path} is missing for SCHEMA_VERSION {SCHEMA_VERSION}: {FIX}"
    return json.loads(path.read_text())


def test_version_matches(documented):
    assert documented["schema_version"] == SCHEMA_VERSION
    assert documented["metadata"] == {k.decode(): v.decode() for k, v in SCHEMA.metadata.items()}
    assert documented["metadata"]["evc_archive.manifest_schema_version"] == str(SCHEMA_VERSION)


def test_fields_match_field_by_field(documented):
    doc_fields = documented["fields"]
    assert [f["name"] for f in doc_fields] == SCHEMA.names, FIX
    for field, doc in zip(SCHEMA, doc_fields):
        assert doc == {"name": field.name, "type": str(field.type), "nullable": field.nullable}, \
            f"column {field.name}: {FIX}"


def test_markdown_table_lists_every_column():
    doc = (MANIFESTS / f"v{SCHEMA_VERSION}.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    names = [line.split("|")[2].strip().strip("`") for line in rows]
    types = [line.split("|")[3].strip().strip("`") for line in rows]
    assert names == SCHEMA.names, FIX
    assert types == [str(f.type) for f in SCHEMA], FIX
