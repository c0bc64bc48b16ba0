"""Where the seconds of one evaluation case go: one CounterFact case under the protocol, profiled.

    python -m tools.profile_case --model gemma-3-270m --editor rome --case 0 --out docs/profile/gemma-rome-case.json

Runs the case once to warm up (key statistics, context templates and the pre-edit cache are made there), then
once more under cProfile with the pre-edit scores computed afresh (no cache), as the first case of a run pays
them. Reports the protocol's own phases (edit, with the editor's steps; post-edit metrics; pre-edit metrics) and
the functions with the most cumulative time, grouped by what they do: forward passes, backward passes,
sampling, scoring.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time


def main(argv=None) -> int:
    import tools
    from factlocate import datasets, editors, load_model
    from factlocate.evaluation import runner
    from factlocate.io import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--editor", default="rome")
    p.add_argument("--dataset", default="counterfact-sample")
    p.add_argument("--case", type=int, default=0, help="record index in file order")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    ds = datasets.load(args.dataset, allow_download=False)
    record = ds.records[args.case]
    model = load_model(args.model)
    editor = editors.get(args.editor)
    hparams = editor.load_hparams(args.model)
    params = runner.EvalParams(generation=True)
    options = runner.prepared(editor, model, hparams)
    runner.run_case(model, record, editor, hparams, params, None, None, options)  # warm-up
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    case = runner.run_case(model, record, editor, hparams, params, None, None, options)
    profile.disable()
    wall = time.perf_counter() - start
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text).sort_stats("cumulative")
    stats.print_stats(args.top)
    rows = []
    for (file, line, name), (_, _, tottime, cumtime, _) in stats.stats.items():
        rows.append({"function": f"{file.split('site-packages/')[-1].split('src/')[-1]}:{line}:{name}",
                     "self_s": tottime, "cumulative_s": cumtime})
    rows.sort(key=lambda r: -r["cumulative_s"])
    result = {"command": tools.command("profile_case", argv), "model": args.model, "editor": args.editor,
              "dataset": ds.name, "case_id": record.case_id, "wall_s": wall, "phases": case["time"],
              "edit_steps": case.get("edit_timings", {}), "top_cumulative": rows[: args.top],
              "top_self": sorted(rows, key=lambda r: -r["self_s"])[: args.top]}
    print(f"{args.editor} on {args.model}, case {record.case_id}: {wall:.1f} s")
    print("phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in case["time"].items()))
    print("edit steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in case.get("edit_timings", {}).items()))
    for r in result["top_self"][:12]:
        print(f"  self {r['self_s']:6.2f} s  cumulative {r['cumulative_s']:6.2f} s  {r['function']}")
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    import tools

    tools.run("profile_case", main)
