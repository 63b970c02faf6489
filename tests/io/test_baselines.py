from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from evc_archive.core import gop_av1
from evc_archive.io.baselines import BASELINES, crf_sweep, encode_baseline, interpolate_at, rate_window, sei_bytes, sweep_crfs
from tests.conftest import moving_square_video


def test_sei_bytes_are_found_and_only_for_h26x():
    clip = moving_square_video(4, 64, 64).numpy()
    for codec in ("x264", "x265"):
        r = encode_baseline(clip, codec, 40)
        assert 0 < r.sei_bytes < r.bytes
        assert r.essential_bpp(64, 64) < r.bpp(64, 64)
    assert encode_baseline(clip, "svtav1", 50).sei_bytes == 0


def test_sei_parser_on_a_hand_made_stream():
    sps = b"\x00\x00\x00\x01\x67" + bytes(5)
    sei = b"\x00\x00\x01\x06" + b"\x05\x10" + b"\x11" * 16 + b"\x80"
    idr = b"\x00\x00\x00\x01\x65" + b"\x88" * 7
    assert sei_bytes(sps + sei + idr, "x264") == len(sei)
    hevc_sei = b"\x00\x00\x01" + bytes([39 << 1, 1]) + bytes(6)
    assert sei_bytes(b"\x00\x00\x01\x40\x01" + bytes(4) + hevc_sei, "x265") == len(hevc_sei)
    assert sei_bytes(sps + sei, "svtav1") == 0


def test_the_anchors_are_the_strongest_settings_at_full_and_half_size():
    full = {"x264", "x265", "svtav1", "svtav1-p2"}
    assert set(BASELINES) == full | {f"{n}-half" for n in full}
    p2 = BASELINES["svtav1-p2"]
    assert dict(p2.preset_options)["preset"] == str(gop_av1.PRESET) and p2.params == gop_av1.SVT_PARAMS == "tune=0"
    assert all(BASELINES[f"{n}-half"].scale == 2 and BASELINES[n].scale == 1 for n in full)


def test_every_sweep_of_every_anchor_codes_its_floor():
    """The floor is CRF 51 (x264/x265) or 63 (SVT-AV1) and every sweep codes it and its other end."""
    for name, spec in BASELINES.items():
        crfs = sweep_crfs(name)
        assert spec.floor == (63 if spec.encoder == "libsvtav1" else 51)
        assert crfs[-1] == spec.floor and crfs[0] == spec.crf_range[0] and crfs == sorted(set(crfs))
        assert max(b - a for a, b in zip(crfs, crfs[1:])) <= 3
    assert sweep_crfs("svtav1")[-2:] == [60, 63]


def test_the_floor_is_the_lowest_rate_setting():
    """Above the floor the encoder refuses the CRF or codes the floor's bytes (x264 clamps)."""
    clip = moving_square_video(4, 64, 64).numpy()
    assert encode_baseline(clip, "x264", 52).bytes == pytest.approx(encode_baseline(clip, "x264", 51).bytes, rel=0.03)
    for codec in ("x265", "svtav1"):
        with pytest.raises((av.error.FFmpegError, OverflowError, ValueError)):
            encode_baseline(clip, codec, BASELINES[codec].floor + 1)


def test_half_size_codes_the_area_shrunk_clip_and_upscales_after_decoding():
    """svtav1-half = the area-shrunk clip coded by svtav1 (same bytes: SVT-AV1 is deterministic),
    decoded, Lanczos-upscaled to the source size; bpp per source pixel, below full size's."""
    clip = moving_square_video(4, 48, 64).numpy()
    half = encode_baseline(clip, "svtav1-half", 50)
    small = np.stack([np.asarray(Image.fromarray(f).resize((32, 24), Image.BOX)) for f in clip])
    direct = encode_baseline(small, "svtav1", 50)
    assert half.coded_size == (24, 32) and half.frames.shape == clip.shape
    assert half.bytes == direct.bytes
    up = np.stack([np.asarray(Image.fromarray(f).resize((64, 48), Image.LANCZOS)) for f in direct.frames])
    assert np.array_equal(half.frames, up)
    assert half.bpp(64, 48) < encode_baseline(clip, "svtav1", 50).bpp(64, 48)


def test_odd_sizes_and_every_anchor_decode_to_the_source_size():
    clip = moving_square_video(3, 33, 35).numpy()
    for name in ("x264", "x264-half", "svtav1-p2", "svtav1-p2-half"):
        r = encode_baseline(clip, name, BASELINES[name].floor, Fraction(25))
        assert r.frames.shape == clip.shape and r.bytes > 0
    assert encode_baseline(clip, "x264-half", 40).coded_size == (17, 18)


def test_every_anchor_converts_colour_as_our_codecs_do():
    """A flat frame is coded exactly by every anchor at its best quality, so its decode is the colour
    path's own round trip: ours (full-range BT.601), not swscale's limited range (201,37,90 -> 199,35,88)."""
    from evc_archive.core.keyframes.av1_intra import rgb_to_yuv420, yuv420_to_rgb

    flat = np.zeros((2, 16, 16, 3), np.uint8)
    flat[...] = (201, 37, 90)
    ours = yuv420_to_rgb(*rgb_to_yuv420(flat[0]))
    assert ours[0, 0].tolist() == [201, 37, 90]
    for name, spec in BASELINES.items():
        decoded = encode_baseline(flat, name, spec.crf_range[0]).frames
        assert (decoded == ours).all(), name


def test_x265_codes_pictures_below_its_minimum_size_padded():
    tiny = moving_square_video(2, 9, 11).numpy()
    for name in ("x265", "x265-half"):
        assert encode_baseline(tiny, name, 40).frames.shape == tiny.shape


def test_preset_2_tune_0_is_a_different_encode_than_preset_4():
    clip = moving_square_video(6, 64, 64).numpy()
    p2, p4 = crf_sweep(clip, "svtav1-p2", [45]), crf_sweep(clip, "svtav1", [45])
    assert p2[0].bytes != p4[0].bytes


def test_x265_at_widths_where_it_would_abort_the_process():
    """libx265 veryslow corrupts its heap at widths 34-48 (a half-size anchor of a 68-96 px wide
    video): those are coded padded to 64 columns. In a subprocess: a regression aborts it."""
    import subprocess
    import sys

    code = ("from evc_archive.io.baselines import encode_baseline\n"
            "from tests.conftest import moving_square_video\n"
            "for shape, codec in (((48, 40), 'x265'), ((48, 80), 'x265-half'), ((40, 48), 'x265')):\n"
            "    clip = moving_square_video(4, *shape).numpy()\n"
            "    r = encode_baseline(clip, codec, 40)\n"
            "    assert r.frames.shape == clip.shape and abs(r.frames.astype(int) - clip).mean() < 20, codec\n"
            "print('ok')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-2000:]


def test_rate_window_holds_every_bracket_of_the_targets():
    """Two points below the lowest target, one at or above the highest, everything between; an
    interpolation over the window's values alone equals the one over the whole sweep."""
    bpps = [0.9, 0.3, 0.11, 0.06, 0.04, 0.025, 0.018, 0.012, 0.008]  # descending, as CRFs ascend
    assert rate_window(bpps, (0.02, 0.03, 0.05, 0.07)) == [2, 3, 4, 5, 6, 7]
    assert rate_window(bpps, (0.005,)) == [8]  # below the sweep: nothing brackets it
    assert rate_window(bpps, (2.0,)) == [0, 1]  # above it: the two highest (nothing brackets it)
    values = [float(np.log(b)) ** 2 for b in bpps]
    kept = [v if i in rate_window(bpps, (0.02, 0.07)) else None for i, v in enumerate(values)]
    for t in (0.019, 0.02, 0.045, 0.07):
        assert interpolate_at(bpps, kept, t) == pytest.approx(interpolate_at(bpps, values, t))
    assert interpolate_at(bpps, kept, 0.2) is None
