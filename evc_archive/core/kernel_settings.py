"""The settings that may change a float kernel's result, and decoding streams under one of them.

Each setting is read when torch loads (oneDNN's instruction set, ATen's vector width, the thread
count), so a decode under a setting runs in a fresh process: `decode_under` starts this module,
which decodes the streams and prints one JSON line with the fingerprints of their frames. The
golden tests and `jobs/benchmark_bitexact.py` both decode this way.

    python -m evc_archive.core.kernel_settings STREAM... [--device cuda] [--no-mkldnn]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

KERNEL_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


@dataclass(frozen=True)
class KernelSetting:
    """One process's kernel choice. None leaves the library's own choice (its best for the CPU)."""

    isa: str | None = None  # ONEDNN_MAX_CPU_ISA: SSE41, AVX2, AVX512_CORE, ...
    aten: str | None = None  # ATEN_CPU_CAPABILITY: default, avx2, avx512
    threads: int | None = None  # OMP_NUM_THREADS / MKL_NUM_THREADS
    mkldnn: bool = True  # False: ATen's own convolutions instead of oneDNN's
    device: str = "cpu"

    @property
    def label(self) -> str:
        if self.device != "cpu":
            return self.device
        threads = "" if self.threads is None else f", {self.threads} thread{'s' if self.threads > 1 else ''}"
        if not self.mkldnn:
            return f"oneDNN off{threads}"
        return f"oneDNN {self.isa or 'best'}, ATen {self.aten or 'best'}{threads}"

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """base (default: this process's environment) with this setting's variables, and no others."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if k not in KERNEL_VARIABLES}
        if self.isa:
            env["ONEDNN_MAX_CPU_ISA"] = self.isa
        if self.aten:
            env["ATEN_CPU_CAPABILITY"] = self.aten
        if self.threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        return env


def cpu_matrix() -> tuple[KernelSetting, ...]:
    """oneDNN SSE4.1 / AVX2 / best x ATen default / avx2 x 1 / 2 threads, then oneDNN off (13)."""
    grid = tuple(KernelSetting(isa, aten, threads)
                 for isa in ("SSE41", "AVX2", None) for aten in ("default", "avx2") for threads in (1, 2))
    return (*grid, KernelSetting(threads=2, mkldnn=False))


def run_module_under(setting: KernelSetting, module: str, *args: str, root: Path | None = None,
                     timeout: float = 600) -> tuple[dict, str]:
    """`python -m module args` in a fresh process under setting (root: put on PYTHONPATH and run
    there) -> (its last stdout line as JSON, everything it printed). Raises RuntimeError on failure."""
    env = setting.environment()
    if root is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(root), env.get("PYTHONPATH"))))
    out = subprocess.run([sys.executable, "-m", module, *args], cwd=root, env=env, capture_output=True, text=True,
                         timeout=timeout, check=False)
    if out.returncode:
        raise RuntimeError(f"{module} under {setting.label} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stdout + out.stderr


def decode_under(setting: KernelSetting, streams: list[Path]) -> dict:
    """Decode each stream in a fresh process under setting -> this module's JSON line:
    {"streams": {file name: {"sha256": of all frames, "frames": [per-frame fingerprint]}},
     "cpu_capability", "threads", "mkldnn", "device", "onednn_isa"}."""
    flags = [*(["--no-mkldnn"] if not setting.mkldnn else []), "--device", setting.device]
    result, _ = run_module_under(setting, __name__, *flags, *map(str, streams))
    return result


def decode_files(streams: list[Path], device: str = "cpu", mkldnn: bool = True) -> dict:
    """Decode each stream here -> {file name: {"sha256", "frames"}} (see decode_under)."""
    import torch

    from evc_archive.core.decoder import open_stream
    from evc_archive.core.model_library import ModelLibrary
    from evc_archive.core.runtime import fingerprint, frame_fingerprints

    out = {}
    with torch.backends.mkldnn.flags(enabled=mkldnn):
        for path in streams:
            segments = open_stream(path.read_bytes(), ModelLibrary(device=device)).segments()
            frames = torch.cat([s.cpu() for s in segments])
            out[path.name] = {"sha256": fingerprint(frames), "frames": frame_fingerprints(frames)}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("streams", type=Path, nargs="+", help=".evc files to decode")
    parser.add_argument("--device", default="cpu", help="where the models run (cpu, cuda)")
    parser.add_argument("--no-mkldnn", action="store_true", help="turn oneDNN convolutions off (ATen's own kernels)")
    args = parser.parse_args(argv)
    import torch

    streams = decode_files(args.streams, args.device, mkldnn=not args.no_mkldnn)
    print(json.dumps({"streams": streams, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                      "threads": torch.get_num_threads(), "mkldnn": not args.no_mkldnn, "device": args.device,
                      "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "best")}))


if __name__ == "__main__":
    main()
