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
from dataclasses import dataclass, field, fields
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from evc_archive.io.store import Store

SCHEMA_VERSION = 5  # v2 added the per-frame columns frame_lpips, frame_psnr, frame_coded; v3 segment_mode, residual_levels;
# v4 lpips_vgg_mean, lpips_vgg_max, dists_mean, dists_max, frame_lpips_vgg, frame_dists; v5 frame_fingerprints
MANIFEST_PREFIX = "manifest"

def _column(arrow_type: pa.DataType, nullable: bool = True, default: Any = None) -> Any:
    """A ManifestRow field and its Arrow column (required fields have no default)."""
    meta = {"arrow": arrow_type, "nullable": nullable}
    return field(metadata=meta) if not nullable else field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class ManifestRow:
    """One manifest row: one segment (or one unusable source, segment_index -1). The field order is
    the column order; manifests/v<N>.md says what each column means."""

    segment_id: str = _column(pa.string(), nullable=False)  # deterministic: source content + position
    video_id: str = _column(pa.string(), nullable=False)
    source_uri: str = _column(pa.string(), nullable=False)
    segment_index: int = _column(pa.int32(), nullable=False)
    start_frame: int = _column(pa.int64(), nullable=False)
    end_frame: int = _column(pa.int64(), nullable=False)  # exclusive
    video_frames: int | None = _column(pa.int64())  # frames of the whole source video (completeness check)
    width: int | None = _column(pa.int32())
    height: int | None = _column(pa.int32())
    fps_num: int | None = _column(pa.int64())
    fps_den: int | None = _column(pa.int64())
    object_key: str | None = _column(pa.string())  # segments/<video_id>/<index>.evc
    bytes: int | None = _column(pa.int64())
    bpp: float | None = _column(pa.float64())  # bytes * 8 / (frames * width * height)
    lpips_mean: float | None = _column(pa.float64())
    lpips_max: float | None = _column(pa.float64())
    lpips_vgg_mean: float | None = _column(pa.float64())  # LPIPS-VGG: reported only, nothing optimises it (v4)
    lpips_vgg_max: float | None = _column(pa.float64())  # (v4)
    dists_mean: float | None = _column(pa.float64())  # DISTS: reported only, nothing optimises it (v4)
    dists_max: float | None = _column(pa.float64())  # (v4)
    psnr_mean: float | None = _column(pa.float64())
    psnr_min: float | None = _column(pa.float64())
    coded_frames: int | None = _column(pa.int32())
    generated_frames: int | None = _column(pa.int32())
    frame_lpips: list[float] | None = _column(pa.list_(pa.float32()))  # per frame, in order (v2)
    frame_lpips_vgg: list[float] | None = _column(pa.list_(pa.float32()))  # per frame, in order (v4)
    frame_dists: list[float] | None = _column(pa.list_(pa.float32()))  # per frame, in order (v4)
    frame_psnr: list[float] | None = _column(pa.list_(pa.float32()))  # per frame, dB (v2)
    frame_coded: list[bool] | None = _column(pa.list_(pa.bool_()))  # per frame: True = coded, False = generated (v2)
    lpips_threshold: float | None = _column(pa.float64())
    quality: int | None = _column(pa.int16())  # keyframe quality level (the inter GOP's level for segment_mode "inter")
    segment_mode: str | None = _column(pa.string())  # registry.SEGMENT_MODES name: "loop" | "inter" (v3)
    residual_levels: int | None = _column(pa.int16())  # loop: residual frames this many levels up; null: intra only (v3)
    sampling_steps: int | None = _column(pa.int16())
    seed: int | None = _column(pa.int64())
    predictor: str | None = _column(pa.string())
    keyframe_model_sha256: str | None = _column(pa.string())
    predictor_model_sha256: str | None = _column(pa.string())
    target_bpp: float | None = _column(pa.float64())  # null when the job set no target
    rate_note: str | None = _column(pa.string())  # rate control's message when the target could not be met
    recon_fingerprint: str | None = _column(pa.string())  # sha256 of the decoded frames (uint8 bytes)
    frame_fingerprints: list[str] | None = _column(pa.list_(pa.string()))  # per frame: 16 hex of its sha256 (v5)
    worker_host: str | None = _column(pa.string())
    device: str | None = _column(pa.string())
    encode_seconds: float | None = _column(pa.float64())
    attempts: int | None = _column(pa.int16())
    status: str = _column(pa.string(), nullable=False)  # "ok" | "failed"
    error: str | None = _column(pa.string())  # one line, for failed rows
    created_at: dt.datetime = _column(pa.timestamp("us", tz="UTC"), nullable=False)

    def as_dict(self) -> dict[str, Any]:
        """The row as the manifest stores and reads it (column name -> value)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


SCHEMA = pa.schema([pa.field(f.name, f.metadata["arrow"], nullable=f.metadata["nullable"]) for f in fields(ManifestRow)],
                   metadata={"evc_archive.manifest_schema_version": str(SCHEMA_VERSION)})
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
    # one file, read on this thread: the dataset scanner behind pq.read_table leaves pool threads
    # that may abort the process at exit ("terminate called without an active exception",
    # apache/arrow#34314), which `evc-archive ls` hit once in CI
    table = pq.ParquetFile(io.BytesIO(store.read_bytes(key))).read(use_threads=False)
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
