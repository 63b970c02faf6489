import subprocess
import sys
import textwrap

import pytest
import torch

from evc_archive.core import varint
from evc_archive.core.errors import BitstreamError, ModelMismatchError
from evc_archive.core.hyperprior import IntegerHyperSynthesis, KeyframeCodec, KeyframeConfig, padded_size
from tests.conftest import moving_square_video


def test_qualities_and_bad_quality(tiny_codec):
    assert tiny_codec.qualities == (1, 2)
    with pytest.raises(ValueError, match="Invalid quality"):
        tiny_codec.encode(torch.zeros(8, 8, 3, dtype=torch.uint8), 7)


def test_padded_size():
    assert padded_size(128, 128) == (128, 128)
    assert padded_size(33, 17) == (64, 64)
    assert padded_size(129, 1) == (192, 64)


def test_integer_hyper_synthesis_is_exact_and_matches_training_path():
    torch.manual_seed(0)
    hs = IntegerHyperSynthesis(KeyframeConfig(channels=16, latent_channels=24))
    z = torch.randint(-20, 21, (2, 16, 3, 5)).float()
    exact = hs.exact(z)
    assert exact.dtype == torch.float64
    # every value sits on the fixed-point grid of the last layer (integer multiples of 2**-14)
    grid = exact * 2**14
    assert torch.equal(grid, grid.round())
    # the float32 training path computes the same function up to float32 rounding
    assert torch.allclose(hs(z).double(), exact, atol=1e-3)
    # batch order does not change a bit
    assert torch.equal(hs.exact(z.flip(0)).flip(0), exact)


def test_corrupted_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelMismatchError, match="unreadable"):
        KeyframeCodec.load(bad)


def test_payload_length_field_is_checked(tiny_codec):
    with pytest.raises(BitstreamError):
        tiny_codec.decode(b"\x7f" + bytes(3), 1, 16, 16)


_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(int(sys.argv[2]))
    from evc_archive.core.hyperprior import KeyframeCodec
    codec = KeyframeCodec.load(sys.argv[3])
    model = codec.models[1]
    if sys.argv[1] == "encode":
        frames = torch.load(sys.argv[4])
        payloads, symbols = [], []
        for f in frames:
            payloads.append(codec.encode(f, 1))
            x = f.permute(2, 0, 1)[None].float() / 255.0
            from evc_archive.core.hyperprior import _pad
            symbols.append(torch.round(model.g_a(_pad(x))))
        torch.save({"payloads": payloads, "symbols": symbols}, sys.argv[5])
    else:
        enc = torch.load(sys.argv[4])
        from evc_archive.core import varint
        from evc_archive.core.hyperprior import padded_size
        out = []
        for p, f in zip(enc["payloads"], range(len(enc["payloads"]))):
            n, pos = varint.decode(p, 0)
            z_string, y_string = p[pos:pos + n], p[pos + n:]
            ph, pw = padded_size(40, 72)
            z_hat = model.entropy_bottleneck.decompress([z_string], (ph // 64, pw // 64))
            y_hat = model.gaussian_conditional.decompress([y_string], model._indexes(z_hat))
            out.append(y_hat)
        torch.save(out, sys.argv[5])
""")


def test_symbols_identical_across_thread_counts(tiny_model_dir, tmp_path):
    """Encode with 1 CPU thread, decode with 2 (separate processes): every y symbol matches."""
    frames = [moving_square_video(1, 40, 72, seed=s)[0] for s in range(4)]
    torch.save(frames, tmp_path / "frames.pt")
    model = str(tiny_model_dir / "tiny-keyframe.pt")
    run = lambda *a: subprocess.run([sys.executable, "-c", _SCRIPT, *a], check=True, capture_output=True)  # noqa: E731
    run("encode", "1", model, str(tmp_path / "frames.pt"), str(tmp_path / "enc.pt"))
    run("decode", "2", model, str(tmp_path / "enc.pt"), str(tmp_path / "dec.pt"))
    enc = torch.load(tmp_path / "enc.pt")
    dec = torch.load(tmp_path / "dec.pt")
    for symbols, decoded in zip(enc["symbols"], dec):
        assert torch.equal(symbols, decoded)


def test_integer_codec_decodes_the_float_codecs_latents_with_its_integer_synthesis(tiny_codec, tiny_int_codec):
    """Kind 3 shares kind 1's payloads (analysis, entropy models and tables unchanged); only g_s differs."""
    assert (tiny_codec.model_id, tiny_int_codec.model_id) == (1, 3)
    frame = moving_square_video(1, 40, 72, seed=5)[0]
    payload = tiny_codec.encode(frame, 1)
    assert tiny_int_codec.encode(frame, 1) == payload
    int_frame = tiny_int_codec.decode(payload, 1, 40, 72)
    z_len, pos = varint.decode(payload, 0)
    y_hat = tiny_int_codec.models[1].decode_latents(payload[pos:pos + z_len], payload[pos + z_len:], 64, 128)
    assert torch.equal(int_frame, tiny_int_codec.synthesis[1](y_hat)[0, :, :40, :72].permute(1, 2, 0))
    float_frame = tiny_codec.decode(payload, 1, 40, 72)
    assert (int_frame.int() - float_frame.int()).abs().max() <= 1


def test_the_two_model_formats_are_not_interchangeable(tiny_model_dir):
    with pytest.raises(ModelMismatchError, match="evc-keyframe-int/1"):
        KeyframeCodec.load(tiny_model_dir / "tiny-keyframe.pt", integer=True)
    with pytest.raises(ModelMismatchError, match="evc-keyframe/1"):
        KeyframeCodec.load(tiny_model_dir / "tiny-keyframe-int.pt")
