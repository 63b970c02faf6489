"""Which settings change a decode: streams of an integer predictor and of its float parent (by
default restore-hint-int, kind 7, the default, and restore-hint, kind 6; `--kinds diffusion-int
diffusion` for the diffusion pair), encoded once, decoded in a fresh process under each setting that
may change a float kernel's result; per stream and setting, how many frames differ from the
encoder's reconstruction and the first that does. Writes docs/benchmarks/<name>.{md,json}
(bitexact, or bitexact_diffusion for the diffusion pair).

    python -m jobs.benchmark_bitexact --data ../shared/data [--clips sam2_05_juggle mmaction2_pool_cleaning] \
        [--devices cpu cuda] [--kinds diffusion-int diffusion]

Settings: ONEDNN_MAX_CPU_ISA (SSE41 / AVX2 / oneDNN's best), ATEN_CPU_CAPABILITY (default / avx2),
OMP_NUM_THREADS (1 / 2), oneDNN convolutions off, and each device of --devices (cuda where one is
present). Clips: 128x128x30 from the validation split, encoded with the product's settings at a
fixed point (threshold and quality; no rate control), fast search, on the CPU in this process.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from evc_archive.core.kernel_settings import KernelSetting, cpu_matrix, decode_under
from jobs.benchmarks_common import evaluation_clip

KINDS = ("restore-hint-int", "restore-hint")


def cpu_model() -> str:
    """The CPU's model name and its widest vector extension (what 'oneDNN best' means here)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.processor() or platform.machine())
    widest = next((isa for isa in ("avx512f", "avx2", "sse4_1") if f" {isa}" in info), "unknown")
    return f"{name} (widest vector ISA: {widest})"


def encode_streams(clip_paths: list[Path], folder: Path, kinds: tuple[str, ...] = KINDS) -> dict[str, dict]:
    """Encode each clip with each kind at the product's fixed point (fast search, no rate control);
    returns stream file name -> its bytes, mean LPIPS / PSNR and the encoder's frame fingerprints."""
    from fractions import Fraction

    from evc_archive.core.encoder import encode_video
    from evc_archive.core.metrics import shared_lpips
    from evc_archive.core.model_library import ModelLibrary
    from evc_archive.core.runtime import frame_fingerprints
    from evc_archive.core.settings import EncoderSettings

    library, metric = ModelLibrary(), shared_lpips()
    settings = EncoderSettings.product(search="fast", inter_fallback=False)
    streams = {}
    for path in clip_paths:
        clip = evaluation_clip(path)
        for kind in kinds:
            enc = encode_video([clip], Fraction(25), library.keyframe_named("svtav1"), library.predictor_named(kind),
                               metric, settings)
            name = f"{path.stem}.{kind}.evc"
            (folder / name).write_bytes(enc.data)
            streams[name] = {"clip": path.stem, "kind": kind, "bytes": len(enc.data), "bpp": enc.bpp,
                             "lpips": float(torch.cat([r.lpips for r in enc.results]).mean()),
                             "psnr": float(torch.cat([r.psnr for r in enc.results]).mean()),
                             "fingerprints": frame_fingerprints(torch.cat([r.reconstruction for r in enc.results]))}
            print(f"encoded {name}: {len(enc.data)} bytes, LPIPS {streams[name]['lpips']:.4f}", flush=True)
    return streams


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (video/)")
    parser.add_argument("--clips", nargs="+", default=["sam2_05_juggle", "mmaction2_pool_cleaning"],
                        help="validation clips (file stems)")
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--kinds", nargs=2, default=list(KINDS), help="the integer predictor and its float parent")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    settings = [*cpu_matrix(), *(KernelSetting(device=d) for d in args.devices if d != "cpu")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        encoded = encode_streams([args.data / "video" / f"{c}.mp4" for c in args.clips], folder, tuple(args.kinds))
        expected = {name: e["fingerprints"] for name, e in encoded.items()}
        streams = sorted(folder / n for n in expected)
        rows = []
        for setting in settings:
            got = decode_under(setting, streams)
            for name, decoded in got["streams"].items():
                prints = decoded["frames"]
                differ = [i for i, (a, b) in enumerate(zip(expected[name], prints)) if a != b]
                rows.append({"setting": setting.label, "stream": name, "frames": len(prints),
                             "frames_differing": len(differ), "first_differing": differ[0] if differ else None,
                             "cpu_capability": got["cpu_capability"], "threads": got["threads"]})
            print(setting.label, {r["stream"]: r["frames_differing"] for r in rows[-len(streams):]}, flush=True)
    results = {"machine": cpu_model(), "devices": args.devices, "torch": torch.__version__,
               "encoded_under": f"ATen {torch.backends.cpu.get_cpu_capability()}, oneDNN best, 1 thread",
               "kinds": args.kinds, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    name = "bitexact" if tuple(args.kinds) == KINDS else f"bitexact_{args.kinds[1]}"
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=1))
    write_report(results, args.out / f"{name}.md")


def write_report(results: dict, out: Path) -> None:
    streams = sorted({r["stream"] for r in results["rows"]})
    kinds = results.get("kinds", list(KINDS))
    lines = [f"# Decodes under other kernels: {kinds[0]} (integer) vs {kinds[1]} (float)", "",
             f"Machine: {results['machine']}; devices: {', '.join(results.get('devices', ['cpu']))}. "
             f"Streams encoded once ({results['encoded_under']}; torch {results['torch']}), decoded in a fresh "
             "process per setting; each cell: frames that differ from the encoder's reconstruction / frames "
             "(first differing frame). Written by `jobs/benchmark_bitexact.py`.", "",
             "| setting | " + " | ".join(streams) + " |", "|---|" + "---|" * len(streams)]
    for setting in dict.fromkeys(r["setting"] for r in results["rows"]):
        cells = []
        for s in streams:
            r = next(r for r in results["rows"] if r["setting"] == setting and r["stream"] == s)
            first = f" (from {r['first_differing']})" if r["first_differing"] is not None else ""
            cells.append(f"{r['frames_differing']}/{r['frames']}{first}")
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
