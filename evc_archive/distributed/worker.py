"""The encode worker: a stateful class that loads its models once and processes one segment per
call. Plain Python here; submit runs it as a Ray actor (one GPU each where GPUs exist).

An encode call reads its own frames (PyAV, seeking), encodes and verify-decodes (or, for a rate
control point that carries its simulated stream, decodes that stream: the same check, without a
second encode), writes the segment object atomically and returns one small manifest row, never
frames. Where the archive store lives in the driver's process only (memory://), the object's bytes
ride back with the row instead and the driver writes them.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from evc_archive.core.bitstream import INTER_SEGMENT, LOOP_SEGMENT
from evc_archive.core.decoder import open_stream
from evc_archive.core.errors import EVCError
from evc_archive.core.model_library import ModelLibrary
from evc_archive.core.ratecontrol import RDPoint
from evc_archive.core.registry import DEFAULT_KEYFRAME_CODEC, DEFAULT_PREDICTOR, SEGMENT_MODES
from evc_archive.core.runtime import device_name, fingerprint, frame_fingerprints, one_line
from evc_archive.core.segment_coding import CodedSegment, SegmentCoder, encode_at, search_points
from evc_archive.core.settings import EncoderSettings
from evc_archive.distributed.plan import SegmentPlan, segment_seed
from evc_archive.io.manifest import ManifestRow, now
from evc_archive.io.sources import open_source
from evc_archive.io.store import Store
from evc_archive.io.video_read import read_frames

PAYLOAD_FIELD = "_payload"  # bytes riding back to the driver for stores it alone can reach
RETRYABLE_FIELD = "_retryable"


@dataclass(frozen=True)
class EncodeJob:
    """What every encode worker of one job shares."""

    archive_url: str
    settings: EncoderSettings = field(default_factory=EncoderSettings.product)
    predictor: str = DEFAULT_PREDICTOR  # a registry.PREDICTORS name
    storage_options: dict[str, Any] = field(default_factory=dict)
    source_options: dict[str, Any] = field(default_factory=dict)
    target_bpp: float | None = None
    route_through_driver: bool = False
    noop: bool = False  # benchmark only: skip reading and coding, return a row at once
    keyframe_codec: str = DEFAULT_KEYFRAME_CODEC  # a registry.KEYFRAME_CODECS name


def plan_row(plan: SegmentPlan, **values: Any) -> ManifestRow:
    """The manifest row of a planned segment, with `values` for the other columns."""
    return ManifestRow(segment_id=plan.segment_id, video_id=plan.video_id, source_uri=plan.source_uri,
                       segment_index=plan.index, start_frame=plan.start, end_frame=plan.end,
                       video_frames=plan.video_frames or None, width=plan.width, height=plan.height,
                       fps_num=plan.fps.numerator, fps_den=plan.fps.denominator, object_key=plan.object_key, **values)


def failed_row(plan: SegmentPlan, error: str, retryable: bool, **values: Any) -> dict[str, Any]:
    """A failed segment's row as it travels to the driver (retryable: not the input's fault)."""
    return {**plan_row(plan, status="failed", error=error, created_at=now(), **values).as_dict(),
            RETRYABLE_FIELD: retryable}


class SegmentEncoder:
    """Loads the models once; `rd_table(plan, target)` -> rate control's points, `encode(plan[, point])`
    -> manifest row (a dict, with the object's bytes where the driver writes them)."""

    def __init__(self, job: EncodeJob):
        self.job = job
        self.host = socket.gethostname()
        self.device = device_name()
        if job.noop:
            return
        from evc_archive.core.dists import shared_dists
        from evc_archive.core.lpips_vgg import shared_lpips_vgg
        from evc_archive.core.metrics import shared_lpips

        library = ModelLibrary(device=self.device)
        self.codec = library.keyframe_named(job.keyframe_codec)
        self.predictor = library.predictor_named(job.predictor)
        self.metric = shared_lpips(self.device)
        shared_lpips_vgg(self.device)  # the reported metrics (never encoded with), loaded once here
        shared_dists(self.device)
        self.verify_library = ModelLibrary(device=self.device)
        self.verify_library.register(self.codec)
        self.verify_library.register(self.predictor)
        self.store = None if job.route_through_driver else Store(job.archive_url, job.storage_options)

    def _coder(self, plan: SegmentPlan) -> SegmentCoder:
        return SegmentCoder(self.codec, self.predictor, self.metric, plan.fps)

    def _settings(self, plan: SegmentPlan) -> EncoderSettings:
        """The job's settings with this segment's seed."""
        return replace(self.job.settings, seed=segment_seed(self.job.settings.seed, plan.segment_id))

    def _job_values(self, settings: EncoderSettings) -> dict[str, Any]:
        return {"lpips_threshold": settings.lpips_threshold, "quality": settings.quality,
                "sampling_steps": settings.sampling_steps, "predictor": self.job.predictor,
                "target_bpp": self.job.target_bpp, "worker_host": self.host, "device": self.device}

    def rd_table(self, plan: SegmentPlan, target_bpp: float) -> list[RDPoint] | dict[str, Any]:
        """Rate control's pass 1: exact RD points of this segment near the target (shared work);
        a failed row when the segment cannot be read."""
        try:
            return search_points(self._coder(plan), self._read(plan), self._settings(plan), target_bpp, plan.start)
        except Exception as exc:  # noqa: BLE001
            return failed_row(plan, one_line(exc), not isinstance(exc, EVCError), **self._job_values(self.job.settings))

    def encode(self, plan: SegmentPlan, point: RDPoint | None = None, rate_note: str = "") -> dict[str, Any]:
        """Encode one segment at the job's settings, or at rate control's `point` -> manifest row."""
        started = time.perf_counter()
        settings = self._settings(plan) if point is None else point.settings(self._settings(plan))
        values = self._job_values(settings) | {"rate_note": rate_note or None}
        if self.job.noop:
            return plan_row(plan, status="ok", bytes=0, encode_seconds=0.0, created_at=now(), **values).as_dict()
        try:
            out = self._encode(plan, point, rate_note)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a failed row with its reason
            return failed_row(plan, one_line(exc), not isinstance(exc, EVCError),
                              encode_seconds=time.perf_counter() - started, **values)
        payload = out.pop(PAYLOAD_FIELD, None)
        row = plan_row(plan, status="ok", encode_seconds=time.perf_counter() - started, created_at=now(),
                       **values, **out).as_dict()
        return row if payload is None else {**row, PAYLOAD_FIELD: payload}

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

    def _encode(self, plan: SegmentPlan, point: RDPoint | None, rate_note: str) -> dict[str, Any]:
        # 1. read this segment's frames; 2. encode (at the point, whose bytes encode_at checks), or decode
        # the point's carried stream
        frames = self._read(plan)
        coded = encode_at(self._coder(plan), frames, self._settings(plan), plan.start, point, rate_note)
        # 3. verify-decode the bytes exactly as restore will (a carried stream was decoded in step 2)
        decoded = coded.result.reconstruction
        if not coded.decoded and not torch.equal(next(open_stream(coded.data, self.verify_library).segments()), decoded):
            raise RuntimeError("verify-decode differs from the encoder's reconstruction")
        # 4. store the object (or hand it to the driver)
        out = self._result_values(plan, coded, frames) | {"recon_fingerprint": fingerprint(decoded),
                                                          "frame_fingerprints": frame_fingerprints(decoded)}
        if self.store is None:
            out[PAYLOAD_FIELD] = coded.data
        else:
            self.store.write_bytes(plan.object_key, coded.data)
        return out

    def _result_values(self, plan: SegmentPlan, coded: CodedSegment, frames: torch.Tensor) -> dict[str, Any]:
        """The manifest columns of an encoded segment; frames: its source (n, H, W, 3) uint8. LPIPS-VGG
        and DISTS are measured here, once, on the final reconstruction (reporting only)."""
        from evc_archive.core.reported_metrics import reported_scores

        result, n, inter = coded.result, plan.frames, coded.result.segment.inter is not None
        scores = reported_scores(result.reconstruction, frames, self.device)
        vgg, dists = scores.lpips_vgg, scores.dists
        return {
            "bytes": len(coded.data), "bpp": len(coded.data) * 8 / (n * plan.width * plan.height),
            "lpips_mean": float(coded.lpips.mean()), "lpips_max": float(coded.lpips.max()),
            "lpips_vgg_mean": float(vgg.mean()), "lpips_vgg_max": float(vgg.max()),
            "dists_mean": float(dists.mean()), "dists_max": float(dists.max()),
            "psnr_mean": float(result.psnr.mean()), "psnr_min": float(result.psnr.min()),
            "coded_frames": sum(result.segment.coded), "generated_frames": n - sum(result.segment.coded),
            "segment_mode": SEGMENT_MODES.by_id(INTER_SEGMENT if inter else LOOP_SEGMENT).name,
            "residual_levels": None if inter else coded.settings.residual_levels,
            "frame_lpips": [float(v) for v in coded.lpips], "frame_lpips_vgg": [float(v) for v in vgg],
            "frame_dists": [float(v) for v in dists],
            "frame_psnr": [float(v) for v in result.psnr],
            "frame_coded": [bool(c) for c in result.segment.coded],
            "seed": coded.settings.seed, "keyframe_model_sha256": self.codec.content_hash.hex(),
            "predictor_model_sha256": self.predictor.content_hash.hex(),
        }
