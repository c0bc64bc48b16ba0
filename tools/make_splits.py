"""Cut the shipped dev/test splits (`factlocate/data/splits/<dataset>.json`); see `factlocate.datasets.splits`.

    python -m tools.make_splits            # counterfact-sample and zsre-sample, the shipped files
    python -m tools.make_splits --portability ../shared/data/counterfact_portability_gpt4.json \\
        --training ../shared/data/counterfact-train.json

The second cuts the CounterFact portability file (full CounterFact records, each with a one-hop question): its
`test` split is the first 100 records with a one-hop question that share no text with the MEND/KE training file or
with counterfact-sample's `dev` split (where choices are made); its `dev` split, every other record that shares no
text with those test records.
"""
from __future__ import annotations

import argparse
import json


def portability_split(path: str, training: str, test_n: int) -> dict:
    from factlocate import datasets
    from factlocate.datasets import leakage, splits
    from factlocate.metrics import portability

    ds = datasets.load(f"counterfact:{path}", allow_download=False)
    with open(path, encoding="utf-8") as f:
        hops = portability.one_hop(json.load(f), "counterfact")
    with open(training, encoding="utf-8") as f:
        trained = set().union(*(leakage.example_texts(r) for r in json.load(f)))
    tuned = leakage.all_texts(datasets.load("counterfact-sample").split("dev"))
    rule = (f"test: the first {test_n} records in file order with a one-hop question that share no text with "
            f"the training file {training.rsplit('/', 1)[-1]} or with counterfact-sample's dev split; dev: every "
            "other record that shares no text with any test record")
    return splits.make(ds, test_n, exclude=trained | tuned, eligible=lambda r: r.case_id in hops, rule=rule)


def main(argv=None) -> int:
    from factlocate import datasets
    from factlocate.datasets import splits
    from factlocate.io import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="counterfact,zsre", help="specs to load offline (the shipped samples)")
    p.add_argument("--test", type=int, default=100, help="test records: the first N in file order")
    p.add_argument("--portability", default=None, help="cut the CounterFact portability file at this path instead")
    p.add_argument("--training", default=None, help="with --portability: the MEND/KE training file to keep out")
    args = p.parse_args(argv)
    if args.portability:
        if not args.training:
            p.error("--portability needs --training (the file whose texts the test split must not share)")
        cut = portability_split(args.portability, args.training, args.test)
        write_json(splits.path_for(cut["dataset"]), cut)
        print(f"{cut['dataset']}: test {cut['sizes']['test']}, dev {cut['sizes']['dev']} -> "
              f"{splits.path_for(cut['dataset'])}")
        return 0
    for spec in args.datasets.split(","):
        ds = datasets.load(spec, allow_download=False)
        cut = splits.make(ds, args.test)
        write_json(splits.path_for(ds.name), cut)
        print(f"{ds.name}: test {cut['sizes']['test']}, dev {cut['sizes']['dev']} -> {splits.path_for(ds.name)}")
    return 0


if __name__ == "__main__":
    import tools

    tools.run("make_splits", main)
