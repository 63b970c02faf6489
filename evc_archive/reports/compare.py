"""`evc-archive compare`: ours beside x264, x265 and SVT-AV1 at matched bpp, on the user's videos.

Protocol (fair to the other codecs; written into the output's compare.md):
- Every video is cut into GOP-sized segments, as `submit` does.
- Ours (default: SVT-AV1 intra keyframes + the restore-hint predictor): rate control over the whole
  video (exact RD points per segment on a finer threshold grid than submit searches, plus the loop's
  breakpoints where the grid leaves a gap, Lagrangian allocation at
  each target), then each segment encoded for real as the archive stores it: one complete .evc
  object per segment, every byte counted (header and CRC included).
- Baselines (evc_archive.io.baselines): x264 veryslow, x265 veryslow, SVT-AV1 preset 4 (`svtav1`),
  SVT-AV1 at our inter GOP fallback's setting (`svtav1-p2`: preset 2, tune=0), and each of them at
  half resolution (`NAME-half`: area-shrunk, coded, decoded, Lanczos-upscaled to the source size;
  the upscale is a decoder-side step, its bytes are the half-size stream's, its bpp per source
  pixel). Each segment one closed GOP, the same CRF for every segment of a video, raw packet bytes
  only (no container), minus the SEI messages x264 and x265 write (their settings as text, 0.7-2.3
  KB per GOP, which a decoder ignores; counted in the CSV's sei_bytes; each sweep row's note says
  what its bytes count); a CRF sweep every 3 CRFs down from the codec's floor (CRF 51 for x264/x265,
  63 for SVT-AV1: its lowest rate) to its best-quality end, quality interpolated at each target on a
  log-bpp axis. Targets outside a codec's sweep are reported as unreachable, never extrapolated.
- LPIPS (AlexNet) and PSNR per frame against the source, averaged over frames; LPIPS-VGG (VGG16) and
  DISTS the same way, metrics nothing in our encoder optimises (rate control and frame acceptance use
  LPIPS-AlexNet), on ours' real encode at each target and on the baseline CRFs near the targets
  (io.baselines.rate_window: the points the interpolation at the targets reads; the CSV leaves
  them empty elsewhere and on ours' simulated allocation curve).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np
import torch

from evc_archive.core.errors import EVCError
from evc_archive.core.registry import DEFAULT_KEYFRAME_CODEC, DEFAULT_PREDICTOR
from evc_archive.core.settings import EncoderSettings
from evc_archive.distributed.plan import segment_ranges
from evc_archive.io.baselines import BASELINES
from evc_archive.reports import figures

Progress = Callable[[str], None]
CODECS = tuple(BASELINES)  # every anchor, full and half size
CSV_FIELDS = ("video", "codec", "kind", "setting", "target_bpp", "bpp", "bytes", "sei_bytes", "lpips", "lpips_vgg", "dists",
              "psnr", "frames", "note")


@dataclass(frozen=True)
class CompareOptions:
    source: str  # a video, a folder, a glob or an fsspec URL (what `submit` accepts)
    out_dir: Path
    targets: tuple[float, ...] = (0.02, 0.03, 0.05)
    gop: int = EncoderSettings.product().gop
    max_frames: int | None = None  # the first N frames of each video
    size: int | None = None  # short side resized to this, centre-cropped square (the benchmarks' protocol)
    predictor: str = DEFAULT_PREDICTOR  # a registry.PREDICTORS name
    codecs: tuple[str, ...] = CODECS
    storage_options: dict[str, Any] = field(default_factory=dict)
    fps: Fraction | None = None  # code at this rate instead of the source's (x264/x265 spend bits by frame rate)
    label: str = ""  # what compare.md calls the input (default: source)
    keyframe_codec: str = DEFAULT_KEYFRAME_CODEC  # a registry.KEYFRAME_CODECS name
    residual_levels: int | None = EncoderSettings.product().residual_levels  # None: intra only
    inter_fallback: bool = EncoderSettings.product().inter_fallback  # a segment may be one AV1 inter GOP where that wins
    search: str = EncoderSettings.product().search  # "fast" or "exhaustive" (EncoderSettings.search)
    # the loop's LPIPS at full size (not submit's 320x180 proxy): the allocation curve compare plots is
    # rate control's own points, so they are exact only when the loop scored at full size
    scoring_pixels: int | None = None

    @property
    def settings(self) -> EncoderSettings:
        """The product's settings with these options (rate control then picks quality and threshold)."""
        return EncoderSettings.product(self.keyframe_codec, gop=self.gop, residual_levels=self.residual_levels,
                                       inter_fallback=self.inter_fallback, search=self.search,
                                       scoring_pixels=self.scoring_pixels)


@dataclass(frozen=True)
class Point:
    """One codec setting on one video (or the value at a target)."""

    codec: str
    kind: str  # "sweep" (a real encode) | "target" (ours: a real encode at the target; baselines: interpolated)
    setting: str
    bpp: float | None
    bytes: int | None
    lpips: float | None
    psnr: float | None
    target_bpp: float | None = None
    note: str = ""
    sei_bytes: int = 0  # baselines: SEI bytes left out of `bytes` (x264/x265 settings text)
    lpips_vgg: float | None = None  # reported only; None on ours' simulated curve and outside rate_window
    dists: float | None = None  # the same


@dataclass
class VideoComparison:
    name: str
    frames: np.ndarray  # (n,H,W,3) uint8, the source as compared
    fps: Fraction
    points: list[Point] = field(default_factory=list)
    ours_frames: dict[float, np.ndarray] = field(default_factory=dict)  # target -> reconstruction
    ours_frame_lpips: dict[float, np.ndarray] = field(default_factory=dict)
    baseline_frames: dict[tuple[str, float], tuple[np.ndarray, float]] = field(default_factory=dict)  # nearest CRF


def _quality(metric, rec: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from evc_archive.core.metrics import score_frames
    from evc_archive.core.source_scores import psnr_frames

    r, s = torch.from_numpy(np.ascontiguousarray(rec)), torch.from_numpy(np.ascontiguousarray(src))
    return score_frames(metric, r, s).numpy(), psnr_frames(r, s).numpy()


def _reported(rec: np.ndarray, src: np.ndarray) -> dict[str, float]:
    """Mean LPIPS-VGG and DISTS of uint8 (n,H,W,3) reconstructions against the source: Point fields."""
    from evc_archive.core.reported_metrics import reported_scores

    r, s = torch.from_numpy(np.ascontiguousarray(rec)), torch.from_numpy(np.ascontiguousarray(src))
    return reported_scores(r, s).means()


def load_video(uri: str, opts: CompareOptions) -> tuple[np.ndarray, Fraction]:
    """(n,H,W,3) uint8 and the frame rate, limited/resized as the options say."""
    from evc_archive.io.clip import square_clip
    from evc_archive.io.sources import open_source
    from evc_archive.io.video_probe import probe_video
    from evc_archive.io.video_read import read_frames

    def opened(read):  # a fresh file object per pass (remote files are read as streams)
        source = open_source(uri, opts.storage_options)
        try:
            return read(source)
        finally:
            if hasattr(source, "close"):
                source.close()

    info = opened(lambda s: probe_video(s, exact=False))
    frames = opened(lambda s: read_frames(s, 0, opts.max_frames))
    if len(frames) == 0:
        raise EVCError(f"'{uri}' has no video frames")
    if opts.size:
        frames = square_clip(frames, opts.size)
    return frames, Fraction(opts.fps or info.fps)


def compare_ours(video: VideoComparison, opts: CompareOptions, metric, on_progress: Progress) -> None:
    """Rate control at each target over the video's segments; each segment then encoded for real."""
    from evc_archive.core.model_library import ModelLibrary
    from evc_archive.core.ratecontrol import DEFAULT_THRESHOLDS, allocate
    from evc_archive.core.segment_coding import SegmentCoder, encode_at, search_points

    library = ModelLibrary()
    coder = SegmentCoder(library.keyframe_named(opts.keyframe_codec), library.predictor_named(opts.predictor), metric,
                         video.fps)
    settings = opts.settings
    segs = segment_ranges(len(video.frames), opts.gop)
    tables = []
    for k, (a, b) in enumerate(segs):
        on_progress(f"{video.name}: ours, RD points of segment {k + 1}/{len(segs)}")
        tables.append(search_points(coder, torch.from_numpy(video.frames[a:b]), settings, tuple(opts.targets), a,
                                    thresholds=DEFAULT_THRESHOLDS))  # exhaustive: finer than submit's grid
    pixels = video.frames.shape[0] * video.frames.shape[1] * video.frames.shape[2]
    # the RD curve: allocations on a dense grid of targets (exact simulated points, no extra encodes)
    for t in np.geomspace(min(opts.targets) / 2, max(opts.targets) * 2, 16):
        alloc = allocate(tables, float(t))
        n = sum(c.point.frames for c in alloc.choices)
        video.points.append(Point("ours", "sweep", f"allocation at {t:.4f}", alloc.bpp, alloc.total_bytes,
                                  sum(c.point.lpips * c.point.frames for c in alloc.choices) / n,
                                  sum(c.point.psnr * c.point.frames for c in alloc.choices) / n))
    for t in opts.targets:
        on_progress(f"{video.name}: ours at {t:g} bpp")
        alloc = allocate(tables, t)
        coded = [encode_at(coder, torch.from_numpy(video.frames[a:b]), settings, a, choice.point)
                 for (a, b), choice in zip(segs, alloc.choices)]
        total = sum(len(c.data) for c in coded)
        lpf = np.concatenate([c.lpips.numpy() for c in coded])
        psf = np.concatenate([c.result.psnr.numpy() for c in coded])
        video.ours_frames[t] = np.concatenate([c.result.reconstruction.numpy() for c in coded])
        video.ours_frame_lpips[t] = lpf
        settings_text = ";".join(c.point.label for c in alloc.choices)
        bpp = total * 8 / pixels
        note = alloc.note or (f"spends {bpp:.4f} bpp: no setting measured closer to the target has a better LPIPS"
                              if bpp < 0.9 * t else "")
        video.points.append(Point("ours", "target", settings_text, bpp, total, float(lpf.mean()), float(psf.mean()),
                                  t, note, **_reported(video.ours_frames[t], video.frames)))


def baseline_note(codec: str, height: int, width: int) -> str:
    """What a baseline sweep row's bytes count, and the size it is coded at where that differs."""
    note = "bytes: raw packets less the SEI settings text (sei_bytes), no container"
    ch, cw = BASELINES[codec].coded_size(height, width)
    if (ch, cw) != (height, width):
        note += (f"; coded at {cw}x{ch}, upscaled (Lanczos-3) to {width}x{height} on the decoder side "
                 "(a step, not bytes)")
    return note


SWEEP_REACH = 2.0  # a baseline sweep stops once it has coded a rate this many times the highest target


def compare_baseline(video: VideoComparison, codec: str, opts: CompareOptions, metric, on_progress: Progress) -> None:
    """A CRF sweep (same CRF for every segment, each segment a closed GOP) from the codec's floor
    (its lowest rate) up to the first CRF past twice the highest target, interpolated at the targets."""
    from evc_archive.io.baselines import encode_baseline, interpolate_at, rate_window, sweep_crfs

    n, h, w, _ = video.frames.shape
    segs = segment_ranges(n, opts.gop)
    sweep: list[tuple[Point, np.ndarray]] = []
    counted = baseline_note(codec, h, w)
    for crf in sorted(sweep_crfs(codec), reverse=True):  # from the floor up: rates rise as CRF falls
        if sweep and max(p.bpp for p, _ in sweep) >= SWEEP_REACH * max(opts.targets):
            break
        on_progress(f"{video.name}: {codec} CRF {crf}")
        parts = [encode_baseline(video.frames[a:b], codec, crf, video.fps) for a, b in segs]
        rec = np.concatenate([p.frames for p in parts])
        sei = sum(p.sei_bytes for p in parts)
        total = sum(p.bytes for p in parts) - sei  # SEI (the encoder's settings text) is not needed to decode
        lp, ps = _quality(metric, rec, video.frames)
        point = Point(codec, "sweep", f"crf {crf}", total * 8 / (n * h * w), total, float(lp.mean()), float(ps.mean()),
                      note=counted, sei_bytes=sei)
        sweep.append((point, rec))
    bpps = [p.bpp for p, _ in sweep]
    scored = set(rate_window(bpps, opts.targets))  # LPIPS-VGG and DISTS near the targets only (VGG16 passes)
    sweep = [(replace(p, **_reported(rec, video.frames)) if i in scored else p, rec)
             for i, (p, rec) in enumerate(sweep)]
    video.points.extend(p for p, _ in sweep)
    for t in opts.targets:
        lp = interpolate_at(bpps, [p.lpips for p, _ in sweep], t)
        ps = interpolate_at(bpps, [p.psnr for p, _ in sweep], t)
        reported = {k: interpolate_at(bpps, [getattr(p, k) for p, _ in sweep], t) for k in ("lpips_vgg", "dists")}
        note = "" if lp is not None else f"unreachable: this codec's CRF range gives {min(bpps):.4f}-{max(bpps):.4f} bpp"
        video.points.append(Point(codec, "target", "interpolated", t if lp is not None else None, None, lp, ps, t, note,
                                  **reported))
        nearest = min(sweep, key=lambda pr: abs(np.log(pr[0].bpp / t)))
        video.baseline_frames[(codec, t)] = (nearest[1], nearest[0].bpp)


def rows(video: VideoComparison) -> list[dict[str, Any]]:
    return [{"video": video.name, "codec": p.codec, "kind": p.kind, "setting": p.setting, "target_bpp": p.target_bpp,
             "bpp": p.bpp, "bytes": p.bytes, "sei_bytes": p.sei_bytes, "lpips": p.lpips, "lpips_vgg": p.lpips_vgg,
             "dists": p.dists, "psnr": p.psnr, "frames": len(video.frames), "note": p.note} for p in video.points]


def rd_figure(video: VideoComparison, opts: CompareOptions, key: str = "lpips") -> bytes:
    curves = {c: [(p.bpp, getattr(p, key)) for p in video.points if p.codec == c and p.kind == "sweep"]
              for c in ("ours", *opts.codecs)}
    label = "LPIPS (lower is better)" if key == "lpips" else "PSNR dB (higher is better)"
    return figures.rd_png(curves, opts.targets, f"{video.name}: {len(video.frames)} frames "
                          f"{video.frames.shape[2]}x{video.frames.shape[1]}", label)


def grid_figure(video: VideoComparison, opts: CompareOptions) -> tuple[bytes, int]:
    """One frame (ours' worst at the middle target), one row per target: source | ours | each codec
    at its CRF nearest the target; every tile captioned with the real bpp and that frame's LPIPS."""
    mid = sorted(opts.targets)[len(opts.targets) // 2]
    frame = int(np.argmax(video.ours_frame_lpips[mid]))
    src = video.frames[frame]
    grid, captions = [], []
    for t in opts.targets:
        ours_bpp = next(p.bpp for p in video.points if p.codec == "ours" and p.kind == "target" and p.target_bpp == t)
        tiles = [(src, "source"), (video.ours_frames[t][frame], f"{ours_bpp:.3f} bpp")]
        tiles += [(video.baseline_frames[(c, t)][0][frame], f"{video.baseline_frames[(c, t)][1]:.3f} bpp")
                  for c in opts.codecs]
        lp, _ = _quality(_grid_metric(), np.stack([f for f, _ in tiles]), np.stack([src] * len(tiles)))
        grid.append((f"{t:g} bpp", np.stack([f for f, _ in tiles])))
        captions.append([cap if j == 0 else f"{cap} L{lp[j]:.2f}" for j, (_, cap) in enumerate(tiles)])
    scale = figures.tile_scale(*video.frames.shape[1:3], target=200)
    png = figures.strip_png(grid, ["source", "ours", *opts.codecs], None, scale, captions)
    return png, frame


def _grid_metric():
    from evc_archive.core.metrics import shared_lpips

    return shared_lpips("cpu")


def write_markdown(path: Path, videos: list[VideoComparison], opts: CompareOptions) -> None:
    lines = [f"# evc-archive compare: {opts.label or opts.source}", "", __doc__.split("\n\n", 1)[1].strip(), "",
             "| video | target bpp | codec | bpp | LPIPS | LPIPS-VGG | DISTS | PSNR dB | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for v in videos:
        for t in opts.targets:
            for p in v.points:
                if p.kind == "target" and p.target_bpp == t:
                    lines.append(f"| {v.name} | {t:g} | {p.codec} | {_f(p.bpp, 4)} | {_f(p.lpips, 3)} | "
                                 f"{_f(p.lpips_vgg, 3)} | {_f(p.dists, 3)} | {_f(p.psnr, 2)} | {p.note} |")
    lines += ["", "Ours: real encodes at each target (bpp = every byte of the segment objects). Baselines: "
              "interpolated between the two CRFs around the target. Frame grids show each baseline at its CRF "
              "nearest the target (its real bpp is in the CSV)."]
    path.write_text("\n".join(lines) + "\n")


def _f(v: float | None, digits: int) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def run_compare(opts: CompareOptions, on_progress: Progress | None = None) -> list[VideoComparison]:
    """Compare every video of opts.source; write compare.csv, compare.md, <video>.rd.png,
    <video>.grid.png into opts.out_dir. Returns the comparisons."""
    from evc_archive.core.metrics import shared_lpips
    from evc_archive.io.files import write_atomic
    from evc_archive.io.sources import list_sources

    say = on_progress or (lambda _m: None)
    uris = list_sources(opts.source, opts.storage_options)
    if not uris:
        raise EVCError(f"no video files found in '{opts.source}'")
    unknown = [c for c in opts.codecs if c not in CODECS]
    if unknown:
        raise EVCError(f"unknown codec(s) {', '.join(unknown)}; choose from {', '.join(CODECS)}")
    metric = shared_lpips("cpu")
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for uri in uris:
        name = PurePosixPath(uri).stem
        say(f"{name}: reading")
        try:
            frames, fps = load_video(uri, opts)
        except EVCError:
            raise
        except Exception as exc:  # noqa: BLE001 - unreadable input: one line
            raise EVCError(f"cannot read '{uri}': {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        video = VideoComparison(name, frames, fps)
        compare_ours(video, opts, metric, say)
        for codec in opts.codecs:
            compare_baseline(video, codec, opts, metric, say)
        write_atomic(opts.out_dir / f"{name}.rd.png", rd_figure(video, opts))
        write_atomic(opts.out_dir / f"{name}.rd_psnr.png", rd_figure(video, opts, "psnr"))
        write_atomic(opts.out_dir / f"{name}.grid.png", grid_figure(video, opts)[0])
        results.append(video)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for v in results:
        writer.writerows(rows(v))
    write_atomic(opts.out_dir / "compare.csv", buf.getvalue().encode())
    write_markdown(opts.out_dir / "compare.md", results, opts)
    return results
