"""Decode every golden stream in this process and print one JSON line: the frame hashes and the
settings the process ran under (tests/golden/test_golden.py runs it under each setting).

    python -m tests.golden.decode [--device cuda] [--no-mkldnn] [--stream FILE]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from tests.golden.recipe import PREDICTORS, decode, frames_sha256, stream_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-mkldnn", action="store_true", help="turn oneDNN convolutions off (ATen's own kernels)")
    parser.add_argument("--stream", type=Path, action="append", help="decode these files instead of the goldens")
    args = parser.parse_args(argv)
    paths = {p.name: p for p in args.stream} if args.stream else {n: stream_path(n) for n in PREDICTORS}
    with torch.backends.mkldnn.flags(enabled=not args.no_mkldnn):
        hashes = {name: frames_sha256(decode(path.read_bytes(), args.device)) for name, path in paths.items()}
    print(json.dumps({"hashes": hashes, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                      "threads": torch.get_num_threads(), "mkldnn": not args.no_mkldnn, "device": args.device,
                      "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default")}))


if __name__ == "__main__":
    main()
