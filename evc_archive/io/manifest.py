"""The archive manifest: one Parquet row per segment, versioned Arrow schema (manifests/v1.md).

The driver is the only writer. Each batch of rows becomes a new part file
(`manifest/part-<UTC time>-<random>.parquet`, written atomically); a finished job compacts all parts
into one. Readers take the union of the parts and keep one row per segment (the newest, an `ok`
row winning over a `failed` one), so a crash between writing a part and compacting never shows a
segment twice.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from evc_archive.io.store import Store

SCHEMA_VERSION = 3  # v2 added the per-frame columns frame_lpips, frame_psnr, frame_coded; v3 segment_mode, residual_levels
MANIFEST_PREFIX = "manifest"

SCHEMA = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),  # deterministic: source content + position
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("segment_index", pa.int32(), nullable=False),
        pa.field("start_frame", pa.int64(), nullable=False),
        pa.field("end_frame", pa.int64(), nullable=False),  # exclusive
        pa.field("video_frames", pa.int64()),  # frames of the whole source video (completeness check)
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("fps_num", pa.int64()),
        pa.field("fps_den", pa.int64()),
        pa.field("object_key", pa.string()),  # segments/<video_id>/<index>.evc
        pa.field("bytes", pa.int64()),
        pa.field("bpp", pa.float64()),  # bytes * 8 / (frames * width * height)
        pa.field("lpips_mean", pa.float64()),
        pa.field("lpips_max", pa.float64()),
        pa.field("psnr_mean", pa.float64()),
        pa.field("psnr_min", pa.float64()),
        pa.field("coded_frames", pa.int32()),
        pa.field("generated_frames", pa.int32()),
        pa.field("frame_lpips", pa.list_(pa.float32())),  # per frame, in order (v2)
        pa.field("frame_psnr", pa.list_(pa.float32())),  # per frame, dB (v2)
        pa.field("frame_coded", pa.list_(pa.bool_())),  # per frame: True = coded, False = generated (v2)
        pa.field("lpips_threshold", pa.float64()),
        pa.field("quality", pa.int16()),  # keyframe quality level (the inter GOP's level for segment_mode "inter")
        pa.field("segment_mode", pa.string()),  # "loop" (coded + generated frames) | "inter" (one AV1 GOP) (v3)
        pa.field("residual_levels", pa.int16()),  # loop: residual frames this many levels up; null: intra only (v3)
        pa.field("sampling_steps", pa.int16()),
        pa.field("seed", pa.int64()),
        pa.field("predictor", pa.string()),
        pa.field("keyframe_model_sha256", pa.string()),
        pa.field("predictor_model_sha256", pa.string()),
        pa.field("target_bpp", pa.float64()),  # null when the job set no target
        pa.field("rate_note", pa.string()),  # rate control's message when the target could not be met
        pa.field("recon_fingerprint", pa.string()),  # sha256 of the decoded frames (uint8 bytes)
        pa.field("worker_host", pa.string()),
        pa.field("device", pa.string()),
        pa.field("encode_seconds", pa.float64()),
        pa.field("attempts", pa.int16()),
        pa.field("status", pa.string(), nullable=False),  # "ok" | "failed"
        pa.field("error", pa.string()),  # one line, for failed rows
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ],
    metadata={"evc_archive.manifest_schema_version": str(SCHEMA_VERSION)},
)
COLUMNS = tuple(SCHEMA.names)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def rows_to_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """Rows (dicts; missing keys become nulls) -> table in SCHEMA."""
    rows = list(rows)
    columns = {name: [r.get(name) for r in rows] for name in COLUMNS}
    return pa.table(columns, schema=SCHEMA)


def _part_key() -> str:
    stamp = now().strftime("%Y%m%dT%H%M%S%fZ")
    return f"{MANIFEST_PREFIX}/part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"


def append_rows(store: Store, rows: list[dict[str, Any]]) -> str | None:
    """Write rows as a new part (atomic). Returns its key, or None for no rows."""
    if not rows:
        return None
    buf = io.BytesIO()
    pq.write_table(rows_to_table(rows), buf, compression="zstd")
    key = _part_key()
    store.write_bytes(key, buf.getvalue())
    return key


def part_keys(store: Store) -> list[str]:
    return [k for k in store.list(MANIFEST_PREFIX) if k.endswith(".parquet") and "/part-" in f"/{k}"]


def _read_part(store: Store, key: str) -> pa.Table:
    table = pq.read_table(io.BytesIO(store.read_bytes(key)))
    version = int((table.schema.metadata or {}).get(b"evc_archive.manifest_schema_version", b"1"))
    if version > SCHEMA_VERSION:
        from evc_archive.core.errors import EVCError

        raise EVCError(f"manifest part '{key}' has schema version {version}; this build reads up to {SCHEMA_VERSION}")
    return table.select([c for c in COLUMNS if c in table.column_names])


def read_all_rows(store: Store) -> list[dict[str, Any]]:
    """Every row of every part, in part order (duplicates included)."""
    rows: list[dict[str, Any]] = []
    for key in part_keys(store):
        rows.extend(_read_part(store, key).to_pylist())
    return rows


def latest_rows(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One row per segment_id: an ok row beats a failed one, then the newest wins."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        sid = row["segment_id"]
        old = best.get(sid)
        rank = (row["status"] == "ok", row["created_at"])
        if old is None or rank >= (old["status"] == "ok", old["created_at"]):
            best[sid] = row
    return best


def read_manifest(store: Store) -> list[dict[str, Any]]:
    """The manifest as users see it: one row per segment, ordered by video and segment index."""
    rows = latest_rows(read_all_rows(store)).values()
    return sorted(rows, key=lambda r: (r["video_id"], r["segment_index"]))


def compact(store: Store) -> str | None:
    """Rewrite all parts as one (the deduplicated rows), then delete the old parts.
    A crash midway leaves duplicates across parts, which readers resolve."""
    old = part_keys(store)
    if len(old) <= 1:
        return old[0] if old else None
    key = append_rows(store, read_manifest(store))
    for k in old:
        store.fs.rm(store.path(k))
    return key
