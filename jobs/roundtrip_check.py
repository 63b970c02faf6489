"""Round-trip check on real video files with the shipped default models, written to
docs/benchmarks/roundtrip.md:
- encode then decode (lossless .mkv) keeps frame count, size and frame rate;
- decoding twice gives byte-identical frames, equal to the encoder's own reconstruction;
- every single-byte corruption (a sample of positions) and every truncation tried is refused.

    python jobs/roundtrip_check.py ../shared/data/video/sam2_02_cups.mp4 --out docs/benchmarks
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def check(video: Path, settings, library, work: Path) -> dict:
    from evc_archive.core.bitstream import unpack
    from evc_archive.core.errors import BitstreamError
    from evc_archive.io.files import decode_file, encode_file
    from evc_archive.io.video_probe import probe_video
    from evc_archive.io.video_read import read_frames

    stream_path = work / f"{video.stem}.evc"
    t0 = time.perf_counter()
    summary = encode_file(video, stream_path, settings, library, predictor_name="copy-last")
    t_enc = time.perf_counter() - t0
    recon = torch.cat([r.reconstruction for r in summary.encoded.results]).numpy()
    outs = []
    t0 = time.perf_counter()
    for name in ("a.mkv", "b.mkv"):
        decode_file(stream_path, work / name, library)
        outs.append(read_frames(work / name))
    t_dec = (time.perf_counter() - t0) / 2
    src, dec = probe_video(video), probe_video(work / "a.mkv")
    data = stream_path.read_bytes()
    refused = total = 0
    positions = list(range(0, len(data), max(1, len(data) // 200))) + [len(data) - 1]
    for i in positions:
        damaged = bytearray(data)
        damaged[i] ^= 0xA5
        total += 1
        try:
            unpack(bytes(damaged))
        except BitstreamError:
            refused += 1
    for n in (0, 3, len(data) // 2, len(data) - 1):
        total += 1
        try:
            unpack(data[:n])
        except BitstreamError:
            refused += 1
    return {
        "video": video.name, "frames": (src.frame_count, dec.frame_count), "size": ((src.width, src.height), (dec.width, dec.height)),
        "fps": (src.fps, dec.fps), "twice_identical": bool(np.array_equal(outs[0], outs[1])),
        "equals_encoder": bool(np.array_equal(outs[0], recon)), "bytes": len(data), "bpp": summary.encoded.bpp,
        "lpips": summary.mean_lpips, "psnr": summary.mean_psnr, "coded": summary.coded_frames,
        "refused": f"{refused}/{total}", "encode_fps": src.frame_count / t_enc, "decode_fps": src.frame_count / t_dec,
    }


def main(argv: list[str] | None = None) -> None:
    import datetime

    from evc_archive.core.encoder import EncoderSettings
    from evc_archive.core.registry import ModelLibrary

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args(argv)
    settings, library = EncoderSettings(), ModelLibrary()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for video in args.videos:
            rows.append(check(video, settings, library, Path(tmp)))
            print(rows[-1], flush=True)
    lines = ["# Round trip on real video files", "",
             f"`jobs/roundtrip_check.py`, {datetime.date.today().isoformat()}, default settings ({settings}), "
             "copy-last predictor, decoded to lossless .mkv, 2 CPU cores.", "",
             "| video | frames src/dec | size src/dec | fps src/dec | decode twice identical | = encoder reconstruction | bytes | bpp | coded | LPIPS | PSNR | corruptions refused | encode fps | decode fps |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['video']} | {r['frames'][0]}/{r['frames'][1]} | {r['size'][0][0]}x{r['size'][0][1]}/{r['size'][1][0]}x{r['size'][1][1]} | "
                     f"{r['fps'][0]}/{r['fps'][1]} | {r['twice_identical']} | {r['equals_encoder']} | {r['bytes']} | {r['bpp']:.4f} | "
                     f"{r['coded']} | {r['lpips']:.3f} | {r['psnr']:.2f} | {r['refused']} | {r['encode_fps']:.1f} | {r['decode_fps']:.1f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "roundtrip.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
