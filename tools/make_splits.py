"""Cut the shipped dev/test splits (`factlocate/data/splits/<dataset>.json`); see `factlocate.datasets.splits`.

    python -m tools.make_splits            # counterfact-sample and zsre-sample, the shipped files
"""
from __future__ import annotations

import argparse


def main(argv=None) -> int:
    from factlocate import datasets
    from factlocate.datasets import splits
    from factlocate.io import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="counterfact,zsre", help="specs to load offline (the shipped samples)")
    p.add_argument("--test", type=int, default=100, help="test records: the first N in file order")
    args = p.parse_args(argv)
    for spec in args.datasets.split(","):
        ds = datasets.load(spec, allow_download=False)
        cut = splits.make(ds, args.test)
        write_json(splits.path_for(ds.name), cut)
        print(f"{ds.name}: test {cut['sizes']['test']}, dev {cut['sizes']['dev']} -> {splits.path_for(ds.name)}")
    return 0


if __name__ == "__main__":
    import tools

    tools.run("make_splits", main)
