"""Run the benchmark sections and write one markdown report.

    python -m tools.bench --out bench/results.md [--only trace,rome]

With `--only`, the sections not run are kept from the existing report, so one
section can be remeasured without rerunning the others. Each section records
when and on what it was measured.
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import time

import torch

from factlocate.io import write_text

SECTIONS = ("trace", "rome", "original", "evaluation", "decoding", "targets", "atp", "ray")
TITLE = "# factlocate benchmarks"


def _stamp() -> str:
    return (f"_Measured {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, float32 on CPU._")


def _sections(text: str) -> list[str]:
    """The '## ' sections of an existing report, in order."""
    parts, current = [], None
    for line in text.splitlines():
        if line.startswith("## "):
            current = [line]
            parts.append(current)
        elif current is not None:
            current.append(line)
    return ["\n".join(p).strip() for p in parts]


def _merge(old: list[str], new: list[str]) -> list[str]:
    """`old` with each section of the same heading replaced by its `new` version; new headings appended."""
    heading = {s.splitlines()[0]: s for s in new}
    merged = [heading.pop(s.splitlines()[0], s) for s in old]
    return merged + [s for s in new if s.splitlines()[0] in heading]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench/results.md")
    parser.add_argument("--only", default=",".join(SECTIONS))
    args = parser.parse_args()
    old = _sections(open(args.out).read()) if os.path.exists(args.out) else []
    done = []
    for name in args.only.split(","):
        try:
            module = importlib.import_module(f"tools.bench.{name.strip()}")
        except ModuleNotFoundError:
            print(f"no benchmark section {name!r}: use {', '.join(SECTIONS)}")
            continue
        text = module.run()
        if text is None:  # the section cannot run here (a missing checkout, say): its measured table stays
            print(f"section {name.strip()!r} skipped; bench/results.md keeps its earlier table")
            continue
        heading, _, body = text.partition("\n")
        done.append(f"{heading}\n\n{_stamp()}\n{body}".strip())
        report = "\n\n".join([TITLE, *_merge(old, done)]) + "\n"
        write_text(args.out, report)  # keep what finished if a later section fails
    print(report if done else "nothing measured")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
