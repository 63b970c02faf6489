"""The encode worker: a stateful class that loads its models once and processes one segment per
call. Plain Python here; submit runs it as a Ray actor (one GPU each where GPUs exist).

An encode call reads its own frames (PyAV, seeking), encodes, verify-decodes, writes the segment
object atomically and returns one small manifest row, never frames. Where the archive store lives
in the driver's process only (memory://), the object's bytes ride back with the row instead and
the driver writes them.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from evc_archive.core.bitstream import Stream, pack
from evc_archive.core.decoder import open_stream
from evc_archive.core.encoder import EncoderSettings, encode_segment, make_header
from evc_archive.core.errors import EVCError
from evc_archive.core.registry import DEFAULT_PREDICTOR_NAME, ModelLibrary
from evc_archive.core.runtime import device_name, fingerprint, one_line
from evc_archive.distributed.plan import SegmentPlan, segment_seed
from evc_archive.io.manifest import now
from evc_archive.io.sources import open_source
from evc_archive.io.store import Store
from evc_archive.io.video_read import read_frames

PAYLOAD_FIELD = "_payload"  # bytes riding back to the driver for stores it alone can reach
RETRYABLE_FIELD = "_retryable"


@dataclass(frozen=True)
class EncodeJob:
    """What every encode worker of one job shares."""

    archive_url: str
    settings: EncoderSettings = EncoderSettings()
    predictor: str = DEFAULT_PREDICTOR_NAME  # a registry.PREDICTOR_NAMES key
    storage_options: dict[str, Any] = field(default_factory=dict)
    source_options: dict[str, Any] = field(default_factory=dict)
    target_bpp: float | None = None
    route_through_driver: bool = False
    noop: bool = False  # benchmark only: skip reading and coding, return a row at once
    keyframe_codec: str = "svtav1"  # a registry.KEYFRAME_NAMES key: "svtav1" | "hyperprior"


class SegmentEncoder:
    """Loads the models once; `encode(plan)` -> manifest row."""

    def __init__(self, job: EncodeJob):
        self.job = job
        self.host = socket.gethostname()
        self.device = device_name()
        if job.noop:
            return
        from evc_archive.core.metrics import shared_lpips

        library = ModelLibrary(device=self.device)
        self.codec = library.keyframe_named(job.keyframe_codec)
        self.predictor = library.predictor_named(job.predictor)
        self.metric = shared_lpips(self.device)
        self.verify_library = ModelLibrary(device=self.device)
        self.verify_library.register(self.codec)
        self.verify_library.register(self.predictor)
        self.store = None if job.route_through_driver else Store(job.archive_url, job.storage_options)

    def _base_row(self, plan: SegmentPlan) -> dict[str, Any]:
        s = self.job.settings
        return {
            "segment_id": plan.segment_id, "video_id": plan.video_id, "source_uri": plan.source_uri,
            "segment_index": plan.index, "start_frame": plan.start, "end_frame": plan.end,
            "video_frames": plan.video_frames or None, "width": plan.width, "height": plan.height, "fps_num": plan.fps.numerator, "fps_den": plan.fps.denominator,
            "object_key": plan.object_key, "lpips_threshold": s.lpips_threshold, "quality": s.quality,
            "sampling_steps": s.sampling_steps, "predictor": self.job.predictor, "target_bpp": self.job.target_bpp,
            "worker_host": self.host, "device": self.device,
        }

    def rd_table(self, plan: SegmentPlan, target_bpp: float) -> list[dict[str, Any]] | dict[str, Any]:
        """Rate control's pass 1: exact RD points of this segment near the target (shared work),
        as plain dicts; a failed row when the segment cannot be read."""
        from evc_archive.core.loop import residual_search
        from evc_archive.core.ratecontrol import SegmentSimulator

        try:
            frames = self._read(plan)
            seed = segment_seed(self.job.settings.seed, plan.segment_id)
            settings = dataclasses.replace(self.job.settings, seed=seed)
            sim = SegmentSimulator(frames, self.codec, self.predictor, self.metric, settings, plan.fps, plan.start,
                                   residual_search(settings.residual_levels), settings.inter_fallback)
            return [dataclasses.asdict(p) for p in sim.sweep_near(target_bpp)]
        except Exception as exc:  # noqa: BLE001
            row = self._base_row(plan)
            row.update(status="failed", error=one_line(exc), created_at=now())
            row[RETRYABLE_FIELD] = not isinstance(exc, EVCError)
            return row

    def encode(self, plan: SegmentPlan, quality: int | None = None, threshold: float | None = None,
               rate_note: str = "", residual_levels: int | None = None, inter: bool = False) -> dict[str, Any]:
        """Encode one segment (at the job's settings, or at rate control's choice of quality,
        threshold and residual levels, or of an inter GOP's level when `inter`) -> manifest row."""
        started = time.perf_counter()
        row = self._base_row(plan)
        if self.job.noop:
            return {**row, "status": "ok", "bytes": 0, "encode_seconds": 0.0, "created_at": now()}
        if quality is not None:
            row.update(quality=quality, lpips_threshold=threshold, rate_note=rate_note or None)
        try:
            row.update(self._encode(plan, quality, threshold, residual_levels, inter))
            row["status"] = "ok"
        except Exception as exc:  # noqa: BLE001 - every failure becomes a failed row with its reason
            row.update(status="failed", error=one_line(exc))
            row[RETRYABLE_FIELD] = not isinstance(exc, EVCError)
        row["encode_seconds"] = time.perf_counter() - started
        row["created_at"] = now()
        return row

    def _read(self, plan: SegmentPlan) -> torch.Tensor:
        """This segment's frames (seeking), all of them or an error."""
        source = open_source(plan.source_uri, self.job.source_options)
        try:
            frames = torch.from_numpy(np.ascontiguousarray(read_frames(source, plan.start, plan.end)))
        finally:
            if hasattr(source, "close"):
                source.close()
        if frames.shape[0] != plan.frames:
            raise EVCError(f"source gave {frames.shape[0]} frames for [{plan.start}, {plan.end}) (truncated?)")
        return frames

    def _encode(self, plan: SegmentPlan, quality: int | None = None, threshold: float | None = None,
                residual_levels: int | None = None, inter: bool = False) -> dict[str, Any]:
        # 1. read this segment's frames
        frames = self._read(plan)
        # 2. encode with this segment's seed (and rate control's settings, if any)
        seed = segment_seed(self.job.settings.seed, plan.segment_id)
        settings = dataclasses.replace(self.job.settings, seed=seed)
        if quality is not None:
            settings = dataclasses.replace(settings, quality=quality, lpips_threshold=threshold,
                                           residual_levels=residual_levels, inter_level=quality if inter else None)
        result = encode_segment(frames, self.codec, self.predictor, self.metric, settings, seed)
        header = make_header(self.codec, self.predictor, settings, plan.width, plan.height, plan.fps, plan.start)
        data = pack(Stream(header, (result.segment,)))
        # 3. verify-decode the bytes exactly as restore will
        decoded = next(open_stream(data, self.verify_library).segments())
        if not torch.equal(decoded, result.reconstruction):
            raise RuntimeError("verify-decode differs from the encoder's reconstruction")
        # 4. store the object (or hand it to the driver)
        out: dict[str, Any] = {}
        if self.store is None:
            out[PAYLOAD_FIELD] = data
        else:
            self.store.write_bytes(plan.object_key, data)
        n = plan.frames
        out.update({
            "bytes": len(data), "bpp": len(data) * 8 / (n * plan.width * plan.height),
            "lpips_mean": float(result.lpips.mean()), "lpips_max": float(result.lpips.max()),
            "psnr_mean": float(result.psnr.mean()), "psnr_min": float(result.psnr.min()),
            "coded_frames": sum(result.segment.coded), "generated_frames": n - sum(result.segment.coded),
            "segment_mode": "loop" if result.segment.inter is None else "inter",
            "residual_levels": settings.residual_levels if result.segment.inter is None else None,
            "frame_lpips": [float(v) for v in result.lpips], "frame_psnr": [float(v) for v in result.psnr],
            "frame_coded": [bool(c) for c in result.segment.coded],
            "seed": seed, "keyframe_model_sha256": self.codec.content_hash.hex(),
            "predictor_model_sha256": self.predictor.content_hash.hex(),
            "recon_fingerprint": fingerprint(decoded),
        })
        return out
