"""Write the golden streams and their expected frame hashes (tests/golden/recipe.py says what they are).

    python -m tests.golden.make
"""

from __future__ import annotations

import json

import torch

from evc_archive.core.bitstream import RESIDUAL
from evc_archive.core.predictors.restore_hint import RESTORED, unpack_hint
from tests.golden.recipe import EXPECTED, STREAM_DIR, STREAMS, decode, encode, frames_sha256, stream_path


def describe(stream) -> dict:
    """What a golden stream exercises: coded, residual and generated frames, inter segments."""
    loop = [s for s in stream.segments if s.inter is None]
    return {"segments": len(stream.segments), "inter_segments": len(stream.segments) - len(loop),
            "coded_frames": sum(sum(s.coded) for s in loop),
            "residual_frames": sum(f.mode == RESIDUAL for s in loop for f in s.frames),
            "generated_frames": sum(len(s.coded) - sum(s.coded) for s in loop),
            "hints": sum(len(s.hints) for s in loop)}


def main() -> None:
    torch.set_num_threads(1)
    STREAM_DIR.mkdir(exist_ok=True)
    expected = {}
    for name in STREAMS:
        enc = encode(name)
        frames = torch.cat([r.reconstruction for r in enc.results])
        if not torch.equal(decode(enc.data), frames):
            raise SystemExit(f"{name}: the decoder does not reproduce the encoder's reconstruction")
        stream_path(name).write_bytes(enc.data)
        expected[name] = {"file": stream_path(name).name, "bytes": len(enc.data), "frames": int(frames.shape[0]),
                          "version": enc.data[4], "sha256": frames_sha256(frames), **describe(enc.stream)}
        if name == "restore-hint-int":
            modes = [unpack_hint(h)[0] for s in enc.stream.segments for h in s.hints]
            expected[name]["restored_calls"] = sum(m == RESTORED for m in modes)
        if name == "refine-diffusion":
            expected[name]["steered_calls"] = sum(bool(h) and h[0] > 0 for s in enc.stream.segments for h in s.hints)
        print(name, json.dumps(expected[name]), flush=True)
    EXPECTED.write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
