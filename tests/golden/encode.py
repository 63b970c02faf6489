"""Encode one golden recipe in this process and write the stream; print one JSON line with the
SHA-256 of the encoder's reconstruction (test_golden decodes the file under another setting).

    python -m tests.golden.encode restore-hint-int --out FILE
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tests.golden.recipe import STREAMS, encode, frames_sha256


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=STREAMS, help="a golden stream (tests/golden/recipe.py)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    enc = encode(args.name)
    args.out.write_bytes(enc.data)
    print(json.dumps({"sha256": frames_sha256(torch.cat([r.reconstruction for r in enc.results])),
                      "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
