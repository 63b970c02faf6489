"""Decoding an archive's segment objects with the archive's own models (plain Python; restore and
verify run it as a Ray actor, the report in its own process).

The models are read from the archive's `models/` once, into a temporary folder the model library
searches; where the store lives in the driver's process only (memory://) the driver hands them in.
"""

from __future__ import annotations

import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from evc_archive.core.bitstream import unpack
from evc_archive.core.decoder import open_stream
from evc_archive.core.model_library import ModelLibrary
from evc_archive.core.registry import float_models_of
from evc_archive.core.runtime import device_name, fingerprint, first_difference, frame_fingerprints, one_line
from evc_archive.io.store import Store
from evc_archive.io.video_write import write_video


class SegmentDecoder:
    """Loads the archive's models once; decodes segments and writes restored videos."""

    def __init__(self, archive_url: str, storage_options: dict[str, Any] | None = None,
                 model_files: dict[str, bytes] | None = None):
        self.device = device_name()
        self.store = Store(archive_url, storage_options or {})
        self._models_dir = tempfile.TemporaryDirectory(prefix="evc-models-")
        models = model_files if model_files is not None else {
            k.split("/")[-1]: self.store.read_bytes(k) for k in self.store.list("models") if k.endswith(".pt")}
        for name, data in models.items():
            Path(self._models_dir.name, name).write_bytes(data)
        self.library = ModelLibrary(extra_dirs=(Path(self._models_dir.name),), device=self.device)

    def decode_bytes(self, data: bytes) -> torch.Tensor:
        """One segment object -> (n,H,W,3) uint8."""
        return torch.cat(list(open_stream(data, self.library).segments()))

    def verify(self, row: dict[str, Any], data: bytes | None = None) -> dict[str, Any]:
        """Decode one segment and compare with the manifest's fingerprints: status ok / drift /
        damaged, the first drifting frame (manifest v5 rows), and the float models the segment's
        decode depends on ("float_models": () when it is integer arithmetic only)."""
        key, segment_id = row["object_key"], row["segment_id"]
        try:
            data = self.store.read_bytes(key) if data is None else data
            stream = unpack(data)
            floats = float_models_of(stream.header.keyframe_model_id, stream.header.predictor_model_id,
                                     any(seg.inter is None for seg in stream.segments))
            frames = self.decode_bytes(data)
        except Exception as exc:  # noqa: BLE001
            return {"segment_id": segment_id, "status": "damaged", "detail": one_line(exc), "float_models": ()}
        if frames.shape[0] != row["end_frame"] - row["start_frame"]:
            return {"segment_id": segment_id, "status": "damaged", "detail": "wrong frame count", "float_models": floats}
        if fingerprint(frames) == row["recon_fingerprint"]:
            return {"segment_id": segment_id, "status": "ok", "detail": "", "float_models": floats}
        first = first_difference(row.get("frame_fingerprints") or [], frame_fingerprints(frames))
        where = (f"frame {first} of the segment (source frame {row['start_frame'] + first}) is the first that differs"
                 if row.get("frame_fingerprints") and first is not None
                 else "decoded frames differ from the encoder's fingerprint")
        cause = f"; its decode runs float models ({', '.join(floats)}), which depend on the platform" if floats else ""
        return {"segment_id": segment_id, "status": "drift", "detail": where + cause, "first_drift_frame": first,
                "float_models": floats}

    def restore_video(self, rows: list[dict[str, Any]], out_path: str, crf: int | None = None,
                      payloads: list[bytes] | None = None) -> dict[str, Any]:
        """Decode a video's segments in order and write it; returns a small report."""
        started = time.perf_counter()
        rows = sorted(rows, key=lambda r: r["segment_index"])
        try:
            def frames():
                for i, row in enumerate(rows):
                    data = payloads[i] if payloads is not None else self.store.read_bytes(row["object_key"])
                    for frame in self.decode_bytes(data).numpy():
                        yield frame

            write_video(out_path, frames(), Fraction(rows[0]["fps_num"], rows[0]["fps_den"]), crf=crf)
            return {"video_id": rows[0]["video_id"], "status": "ok", "path": out_path,
                    "frames": sum(r["end_frame"] - r["start_frame"] for r in rows),
                    "seconds": time.perf_counter() - started}
        except Exception as exc:  # noqa: BLE001
            return {"video_id": rows[0]["video_id"] if rows else "?", "status": "failed", "path": out_path,
                    "error": one_line(exc), "seconds": time.perf_counter() - started}
