"""Write RGB frames as a video file (PyAV/FFmpeg): lossless FFV1 ``.mkv`` or H.264 ``.mp4``.

Frames come in as numpy ``uint8`` RGB arrays, ``(H, W, 3)`` each, all one size. The output appears
atomically (encoded under a temporary name, then renamed); every failure raises
:class:`~evc_archive.core.errors.VideoError` with one sentence that names the file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from contextlib import suppress
from fractions import Fraction
from itertools import chain
from numbers import Rational, Real
from pathlib import Path

import av
import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from evc_archive.core.errors import VideoError
from evc_archive.io.video_input import _AV_ERRORS, _reason

__all__ = ["SUPPORTED_OUTPUT_EXTENSIONS", "write_video"]

SUPPORTED_OUTPUT_EXTENSIONS: dict[str, str] = {
    ".mkv": "lossless FFV1 in Matroska",
    ".mp4": "H.264 in MP4",
}
"""Extensions :func:`write_video` accepts, with what each one writes."""

_DEFAULT_CRF = 18


def _as_rate(fps: object, name: str) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, Real):
        raise VideoError(f"Cannot write {name}: the frame rate {fps!r} is not a number.")
    if isinstance(fps, Rational):
        rate = Fraction(fps)
    else:
        rate = Fraction(float(fps)).limit_denominator(1001 * 1000)
    if not rate > 0:
        raise VideoError(f"Cannot write {name}: the frame rate must be positive, not {fps}.")
    return rate


def _check_frame(frame: object, i: int, size: tuple[int, int] | None, name: str) -> np.ndarray:
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise VideoError(
            f"Cannot write {name}: frame {i} has shape {array.shape} and dtype {array.dtype}, "
            "but frames must be (H, W, 3) uint8 RGB."
        )
    if size is not None and array.shape[:2] != size:
        raise VideoError(
            f"Cannot write {name}: frame {i} is {array.shape[1]}x{array.shape[0]} but frame 0 is "
            f"{size[1]}x{size[0]}; all frames must have the same size."
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise VideoError(f"Cannot write {name}: frame {i} is empty ({array.shape}).")
    return np.ascontiguousarray(array)


def _encode(
    temp: Path, ext: str, frames: Iterable[np.ndarray], rate: Fraction, crf: int, name: str
) -> None:
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise VideoError(f"Cannot write {name}: there are no frames to write.")
    first = _check_frame(first, 0, None, name)
    height, width = first.shape[:2]
    with av.open(os.fspath(temp), mode="w", format="matroska" if ext == ".mkv" else "mp4") as out:
        if ext == ".mkv":
            # FFV1 codes bgr0 with a reversible colour transform: the RGB comes back bit-exact.
            stream = out.add_stream(
                "ffv1", rate=rate, options={"level": "3", "g": "1", "slicecrc": "1"}
            )
            stream.pix_fmt = "bgr0"
        else:
            stream = out.add_stream("libx264", rate=rate, options={"crf": str(crf)})
            # x264 needs even sizes for 4:2:0; odd sizes keep full chroma instead.
            stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
            # Tag what the conversion below does (BT.709, limited range), so players agree.
            ctx = stream.codec_context
            ctx.colorspace = 1  # AVCOL_SPC_BT709
            ctx.color_primaries = ColorPrimaries.BT709
            ctx.color_trc = ColorTrc.BT709
            ctx.color_range = ColorRange.MPEG
        stream.width, stream.height = width, height
        for i, array in enumerate(chain([first], it)):
            if i:
                array = _check_frame(array, i, (height, width), name)
            frame = VideoFrame.from_ndarray(array, format="rgb24")
            if ext == ".mp4":
                frame = frame.reformat(
                    format=stream.pix_fmt,
                    dst_colorspace=Colorspace.ITU709,
                    dst_color_range=ColorRange.MPEG,
                )
            frame.pts = i
            frame.time_base = 1 / rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    fps: Fraction | int,
    *,
    crf: int | None = None,
) -> None:
    """Write ``frames`` (an iterable of ``(H, W, 3)`` uint8 RGB arrays, all one size, or one
    ``(N, H, W, 3)`` array) to ``path`` at ``fps`` frames per second.

    The extension picks the format: ``.mkv`` is FFV1 lossless (reads back bit-exact; ``crf`` is
    ignored), ``.mp4`` is H.264 at ``crf`` (default 18; yuv420p, or yuv444p when a side is odd),
    tagged BT.709. Frame count and rate round-trip through
    :func:`~evc_archive.io.video_probe.probe_video`.

    The file is encoded under a temporary name in the same folder and renamed into place, so a
    failure leaves no output (and an existing file at ``path`` untouched). Raises VideoError for an
    unsupported extension, a bad frame rate or crf, no frames, frames of the wrong shape or of mixed
    sizes, and encoding or file-system failures.
    """
    target = Path(os.fspath(path))
    name = f"'{target}'"
    ext = target.suffix.lower()
    if ext not in SUPPORTED_OUTPUT_EXTENSIONS:
        supported = ", ".join(f"{e} ({what})" for e, what in SUPPORTED_OUTPUT_EXTENSIONS.items())
        raise VideoError(
            f"Cannot write {name}: the extension '{target.suffix}' is not supported; "
            f"use {supported}."
        )
    rate = _as_rate(fps, name)
    crf = _DEFAULT_CRF if crf is None else crf
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise VideoError(f"Cannot write {name}: crf must be an integer from 0 to 51, not {crf!r}.")
    folder = target.parent
    if not folder.is_dir():
        raise VideoError(f"Cannot write {name}: the folder '{folder}' does not exist.")
    temp = folder / f".{target.name}.{uuid.uuid4().hex[:12]}.part"
    try:
        _encode(temp, ext, frames, rate, crf, name)
        os.replace(temp, target)
    except _AV_ERRORS as e:
        raise VideoError(f"Cannot write {name} ({_reason(e)}).") from e
    finally:
        with suppress(OSError):  # gone after the rename; otherwise best effort
            temp.unlink()
