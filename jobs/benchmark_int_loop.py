"""The integer restoration model against its float parent in the loop: every clip of a split
(128x128x30) coded by restore-hint-int (kind 7, the default) and restore-hint (kind 6) at the
product's fixed point (its threshold and keyframe level, residual frames, fast search, no rate
control); bytes, mean LPIPS (the metric the loop optimises) and PSNR per clip and kind. Writes
docs/benchmarks/<split>/int_loop.{md,json}.

    python -m jobs.benchmark_int_loop --data ../shared/data --split test
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from jobs.benchmark_bitexact import KINDS, encode_streams


def main(argv: list[str] | None = None) -> None:
    from evc_archive.training.splits import add_split_option, clips_in, split_note

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (video/)")
    parser.add_argument("--out", type=Path, default=None, help="default: docs/benchmarks/<split>")
    add_split_option(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    paths = clips_in(args.data / "video", args.split)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [{k: v for k, v in e.items() if k != "fingerprints"} for e in encode_streams(paths, Path(tmp)).values()]
    out = args.out or Path("docs/benchmarks") / args.split
    out.mkdir(parents=True, exist_ok=True)
    (out / "int_loop.json").write_text(json.dumps({"split": args.split, "rows": rows}, indent=1))
    mean = {k: {m: sum(r[m] for r in rows if r["kind"] == k) / len(paths) for m in ("bpp", "lpips", "psnr")}
            for k in KINDS}
    integer, floating = mean[KINDS[0]], mean[KINDS[1]]
    lines = [f"# Integer vs float restoration in the loop ({args.split} clips)", "",
             split_note(args.split, [p.stem for p in paths]), "",
             "128x128x30 per clip, the product's fixed point (no rate control: both kinds at the same "
             "threshold and level, so bytes and LPIPS both move), fast search. Written by "
             "`jobs/benchmark_int_loop.py`.", "",
             "| clip | kind | bytes | bpp | LPIPS | PSNR |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['clip']} | {r['kind']} | {r['bytes']} | {r['bpp']:.4f} | {r['lpips']:.4f} | {r['psnr']:.2f} |"
              for r in rows]
    lines += ["", f"Mean: integer bpp {integer['bpp']:.4f}, LPIPS {integer['lpips']:.4f}, PSNR {integer['psnr']:.2f}; "
              f"float bpp {floating['bpp']:.4f}, LPIPS {floating['lpips']:.4f}, PSNR {floating['psnr']:.2f} "
              f"(LPIPS {100 * (integer['lpips'] / floating['lpips'] - 1):+.2f} %, bytes "
              f"{100 * (integer['bpp'] / floating['bpp'] - 1):+.2f} %).", ""]
    (out / "int_loop.md").write_text("\n".join(lines))
    print(lines[-2])


if __name__ == "__main__":
    main()
