"""Figures for reports, as PNG bytes: distributions, per-frame quality with coded frames marked,
RD curves, and frame strips/grids (source beside restored, coded and generated frames marked)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CODED_COLOUR = (31, 119, 180)  # frames the keyframe codec coded
GENERATED_COLOUR = (255, 127, 14)  # frames the predictor generated
CODEC_COLOURS = {"ours": "#d62728", "x264": "#1f77b4", "x265": "#2ca02c", "svtav1": "#9467bd", "svtav1-p2": "#8c564b"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def histogram_png(values: Sequence[float], xlabel: str, title: str, bins: int = 30) -> bytes:
    """Distribution of one per-segment quantity."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 2.8))
    values = [v for v in values if v is not None and np.isfinite(v)]
    if values:
        ax.hist(values, bins=min(bins, max(5, len(values))), color="#4c72b0", edgecolor="white")
        ax.axvline(float(np.mean(values)), color="#d62728", lw=1.2, label=f"mean {np.mean(values):.3f}")
        ax.legend(frameon=False, fontsize=8)
    ax.set(xlabel=xlabel, ylabel="segments", title=title)
    ax.locator_params(axis="x", nbins=5)
    return _png(fig)


@dataclass(frozen=True)
class SegmentTrace:
    """What the per-frame plot needs of one segment."""

    start_frame: int
    end_frame: int
    bpp: float | None
    lpips_mean: float | None
    frame_lpips: Sequence[float] | None  # None: not recorded (v1 manifest)
    frame_coded: Sequence[bool] | None
    threshold: float | None
    failed: bool = False


def frame_quality_png(segments: Sequence[SegmentTrace], title: str) -> bytes:
    """Top: LPIPS per frame, coded frames marked, the segment's threshold dashed. Bottom: bpp per
    segment (where the bits went). Segments without per-frame data show their mean as a step."""
    plt = _pyplot()
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(9, 3.8), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    labelled = set()

    def label(name: str) -> str | None:
        if name in labelled:
            return None
        labelled.add(name)
        return name

    for s in segments:
        x = np.arange(s.start_frame, s.end_frame)
        if s.failed:
            ax.axvspan(s.start_frame, s.end_frame, color="#d62728", alpha=0.15, lw=0, label=label("failed segment"))
            continue
        if s.frame_lpips is not None and len(s.frame_lpips) == len(x):
            y = np.asarray(s.frame_lpips, dtype=float)
            ax.plot(x, y, color="#444444", lw=1.0, label=label("LPIPS per frame"))
            if s.frame_coded is not None:
                coded = np.asarray(s.frame_coded, dtype=bool)
                ax.scatter(x[coded], y[coded], marker="v", s=28, color=np.array(CODED_COLOUR) / 255, zorder=3,
                           label=label("coded frame"))
        elif s.lpips_mean is not None:
            ax.hlines(s.lpips_mean, s.start_frame, s.end_frame - 1, color="#888888", label=label("segment mean"))
        if s.threshold is not None:
            ax.hlines(s.threshold, s.start_frame, s.end_frame - 1, color="#d62728", lw=0.8, ls="--",
                      label=label("LPIPS threshold"))
        ax.axvline(s.start_frame, color="#cccccc", lw=0.6, zorder=0)
        if s.bpp is not None:
            bx.bar(s.start_frame, s.bpp, width=s.end_frame - s.start_frame, align="edge", color="#4c72b0",
                   edgecolor="white")
    ax.set(ylabel="LPIPS", title=title)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=8, ncol=4, loc="upper left")
    bx.set(xlabel="frame", ylabel="bpp")
    return _png(fig)


def rd_png(curves: dict[str, list[tuple[float, float]]], targets: Sequence[float], title: str,
           ylabel: str = "LPIPS (lower is better)") -> bytes:
    """curves: codec -> [(bpp, quality)] sorted by bpp; targets drawn as dotted verticals."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in curves.items():
        if not pts:
            continue
        xs, ys = zip(*sorted(pts))
        half = name.endswith("-half")  # a baseline at half size: its full-size colour, dashed
        ax.plot(xs, ys, marker="o", ms=3.5, lw=1.4, color=CODEC_COLOURS.get(name.removesuffix("-half")),
                ls="--" if half else "-", label=name)
    for t in targets:
        ax.axvline(t, color="#999999", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set(xlabel="bits per pixel (log)", ylabel=ylabel, title=title)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3, which="both")
    return _png(fig)


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _tile(frame: np.ndarray, scale: int, border: tuple[int, int, int] | None) -> Image.Image:
    im = Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
    if border is None:
        return im
    framed = Image.new("RGB", (im.width + 6, im.height + 6), border)
    framed.paste(im, (3, 3))
    return framed


def tile_scale(height: int, width: int, target: int = 160) -> int:
    """Integer upscale so small frames stay visible (1 for frames of `target` px and more)."""
    return max(1, target // max(1, max(height, width)))


def strip_png(rows: Sequence[tuple[str, np.ndarray | None]], columns: Sequence[str],
              borders: Sequence[tuple[int, int, int] | None] | None = None, scale: int = 1,
              cell_captions: Sequence[Sequence[str]] | None = None) -> bytes:
    """A grid of frames: rows of (label, (n,H,W,3) uint8 or None for 'not available'), one column
    per frame with a caption; `borders` colours each column's frames (e.g. coded vs generated);
    `cell_captions[i][j]` is written under the frame of row i, column j."""
    frames = [f for _, f in rows if f is not None]
    if not frames:
        raise ValueError("no frames to draw")
    h, w = frames[0].shape[1:3]
    pad = 6 if borders is not None else 0
    cell_w, cell_h = w * scale + pad, h * scale + pad
    label_w, caption_h, gap = 90, 18, 4
    under = 16 if cell_captions is not None else 0
    font = _font(12)
    width = label_w + len(columns) * (cell_w + gap)
    height = caption_h + len(rows) * (cell_h + under + gap)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, caption in enumerate(columns):
        draw.text((label_w + j * (cell_w + gap) + 2, 2), caption, fill=(0, 0, 0), font=font)
    for i, (name, stack) in enumerate(rows):
        y = caption_h + i * (cell_h + under + gap)
        draw.text((4, y + cell_h // 2 - 6), name, fill=(0, 0, 0), font=font)
        for j in range(len(columns)):
            x = label_w + j * (cell_w + gap)
            if stack is None:
                draw.rectangle([x, y, x + cell_w - 1, y + cell_h - 1], fill=(235, 235, 235))
                draw.text((x + 4, y + cell_h // 2 - 6), "n/a", fill=(90, 90, 90), font=font)
                continue
            canvas.paste(_tile(stack[j], scale, borders[j] if borders is not None else None), (x, y))
            if cell_captions is not None:
                draw.text((x + 2, y + cell_h + 1), cell_captions[i][j], fill=(40, 40, 40), font=_font(11))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def pick_frames(n: int, count: int, must: Sequence[int] = ()) -> list[int]:
    """Up to `count` frame indices of 0..n-1, evenly spaced, always including `must`."""
    picks = set(int(i) for i in must if 0 <= i < n)
    for i in np.linspace(0, n - 1, num=min(n, count)).round().astype(int):
        if len(picks) >= count:
            break
        picks.add(int(i))
    return sorted(picks)
