"""Run every benchmark section and write one markdown report.

    python -m factlocate.bench --out bench/results.md [--only trace,rome]
"""
from __future__ import annotations

import argparse
import importlib
import platform
import time

import torch

from factlocate.io import write_text

SECTIONS = ("trace", "rome", "evaluation")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench/results.md")
    parser.add_argument("--only", default=",".join(SECTIONS))
    args = parser.parse_args()
    parts = [
        "# factlocate benchmarks",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, float32 on CPU.",
        "",
    ]
    for name in args.only.split(","):
        try:
            module = importlib.import_module(f"factlocate.bench.{name}")
        except ModuleNotFoundError:
            continue
        parts += [module.run(), ""]
        write_text(args.out, "\n".join(parts))  # keep what finished if a later section fails
    print("\n".join(parts))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
