from evc_archive.io.baselines import encode_baseline, sei_bytes
from tests.conftest import moving_square_video


def test_sei_bytes_are_found_and_only_for_h26x():
    clip = moving_square_video(4, 64, 64).numpy()  # x265 (veryslow) corrupts its heap below one 64x64 CTU
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
