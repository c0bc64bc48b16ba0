"""The counts behind notes/eval.md's leakage paragraph, computed and saved (no model edits).

    python -m tools.leakage_counts --model smollm2-135m --out docs/leakage/counts.json

* MEND/KE training rows of `counterfact-train.json` and `zsre_mend_train-1k.json` (paths given): how many the
  evaluated-case-id rule and the shared-text rule drop, alone and together;
* the tokens of key statistics' WikiText-2 text (texts cut at 1,024 tokens, as `key_stats` reads them) and of
  perplexity's held-out text (cut at 256, as `metrics.perplexity` reads it), with the model's tokenizer, and
  whether the two share a text.
"""
from __future__ import annotations

import argparse
import json
from importlib import resources


def main(argv=None) -> int:
    import tools
    from factlocate import load_model, tokens
    from factlocate.datasets.corpus import DEFAULT_CORPUS, PERPLEXITY_CORPUS, corpus_texts
    from factlocate.datasets.leakage import example_texts
    from factlocate.editors.hypernetworks import hypertrain
    from factlocate.io import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--cf-train", default="../shared/data/counterfact-train.json")
    p.add_argument("--zsre-train", default="../shared/data/zsre_mend_train-1k.json")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    test = hypertrain._test_texts()
    cf = json.load(open(args.cf_train, encoding="utf-8"))
    sample = json.loads(resources.files("factlocate.data").joinpath("counterfact_sample.json").read_text())
    evaluated = {r["case_id"] for r in sample}
    by_id = [r["case_id"] in evaluated for r in cf]
    by_text = [bool(example_texts(r) & test) for r in cf]
    zsre = json.load(open(args.zsre_train, encoding="utf-8"))
    model = load_model(args.model)
    c0, held = corpus_texts(DEFAULT_CORPUS), corpus_texts(PERPLEXITY_CORPUS)
    result = {
        "command": tools.command("leakage_counts", argv),
        "counterfact_train": {"rows": len(cf), "by_case_id": sum(by_id), "by_text": sum(by_text),
                              "both": sum(a and b for a, b in zip(by_id, by_text)),
                              "dropped": sum(a or b for a, b in zip(by_id, by_text)),
                              "by_text_only": sum(b and not a for a, b in zip(by_id, by_text))},
        "zsre_train": {"rows": len(zsre), "dropped": hypertrain._from_zsre(zsre)[1]},
        "model": args.model,
        "c0_text": {"corpus": DEFAULT_CORPUS, "texts": len(c0),
                    "tokens_cut_1024": sum(min(1024, len(tokens.encode(model, t))) for t in c0)},
        "perplexity_text": {"corpus": PERPLEXITY_CORPUS, "texts": len(held),
                            "tokens_cut_256": sum(min(256, len(tokens.encode(model, t))) for t in held)},
        "shared_texts": len(set(c0) & set(held)),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    import tools

    tools.run("leakage_counts", main)
