"""The same work on two checkouts of factlocate, alternated: is a change within noise of the code before it?

    python -m tools.bench.ab --base /path/to/old/checkout [--models smollm2-135m,gemma-3-270m] [--rounds 2]

For each model, each round runs one process per checkout, in the order A B B A (so that drift in the
machine's speed falls on both sides alike): the process loads the model, warms up (key statistics and
context templates come from the shared cache), then times a batched causal trace of the bench prompt
(hidden, mlp and attn, 10 samples, noise s3) and one ROME edit at the configured layer (10,000 tokens of
key statistics, the config's v* steps). Each process also reports a digest of its results, so the two
checkouts are shown to compute the same numbers. Model loading is not timed. The worker uses only API
that both checkouts share (`load_model`, `tracing.trace_kinds`, `editors.get(...).HParams`/`.compute_edit`).

Writes the section "A/B: ..." of the report given with --out (default bench/results.md).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKER = r'''
import hashlib, json, sys, time
import numpy as np
import torch
import factlocate
from factlocate import editors, load_model
from factlocate.editors.base import EditRequest
from factlocate.tracing import RunSpec, trace_kinds

spec = sys.argv[1]
torch.manual_seed(0)
model = load_model(spec)
prompt, subject = "The Eiffel Tower is located in the city of", "The Eiffel Tower"
request = EditRequest("The mother tongue of {} is", "Danielle Darrieux", "English", target_true="French")
rome = editors.get("rome")
hp = rome.HParams.load(spec, {"stats_tokens": 10000})
trace_kinds(model, prompt, subject, ["hidden"], RunSpec(samples=2))                       # warm-up
rome.compute_edit(model, [request], rome.HParams.load(spec, {"stats_tokens": 10000, "v_num_grad_steps": 1}))
t = time.perf_counter()
results = trace_kinds(model, prompt, subject, ["hidden", "mlp", "attn"], RunSpec(samples=10))
trace_s = time.perf_counter() - t
t = time.perf_counter()
edit = rome.compute_edit(model, [request], hp)
rome_s = time.perf_counter() - t
grid = np.concatenate([r.scores.ravel() for r in results.values()])
delta = torch.cat([d.delta.double().ravel() for d in edit.deltas])
print(json.dumps({"file": factlocate.__file__, "trace_s": trace_s, "rome_s": rome_s,
                  "v_star_s": edit.timings.get("v_star"), "trace_digest": hashlib.sha1(grid.tobytes()).hexdigest()[:12],
                  "trace_sum": float(grid.sum()), "delta_norm": float(delta.norm()),
                  "p_new_after": edit.probs_after[0]["new"]}))
'''


def _run(tree: Path, spec: str, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}", "OMP_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, "-c", WORKER, spec], env=env, capture_output=True, text=True, cwd=tree)
    if out.returncode != 0:
        raise SystemExit(f"worker failed in {tree}:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["file"].startswith(str(tree)):
        raise SystemExit(f"the worker imported {result['file']}, not the checkout {tree}")
    return result


def measure(base: Path, new: Path, models: list[str], rounds: int, threads: int) -> list[dict]:
    rows = []
    for spec in models:
        runs = {"base": [], "new": []}
        for r in range(rounds):
            for side in (("base", "new") if r % 2 == 0 else ("new", "base")):
                tree = base if side == "base" else new
                result = _run(tree, spec, threads)
                runs[side].append(result)
                print(f"{spec} round {r} {side}: trace {result['trace_s']:.1f} s, rome {result['rome_s']:.1f} s",
                      flush=True)
        rows.append({"model": spec, **runs})
    return rows


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def markdown(rows: list[dict], base_rev: str, new_rev: str, command: str, stamp: str) -> str:
    lines = [f"## A/B: this checkout ({new_rev}) against {base_rev}, alternated", "", stamp, "",
             f"`{command}`. Each cell: median seconds over the rounds (each round A B or B A); the ratio is "
             "new / base (below 1: faster). Same digest: the two checkouts' trace grids are equal bit for bit, "
             "and 'delta norms differ by' compares the two checkouts' ROME deltas.", "",
             "| model | work | base s | new s | new / base | runs each | same results |",
             "|---|---|---:|---:|---:|---:|---|"]
    for row in rows:
        b, n = row["base"], row["new"]
        same_trace = {r["trace_digest"] for r in b} == {r["trace_digest"] for r in n}
        d_norm = max(abs(x["delta_norm"] - y["delta_norm"]) for x in b for y in n)
        for key, label, same in (("trace_s", "batched trace, 3 kinds x 10 samples", "digest equal" if same_trace
                                  else "digest differs"),
                                 ("rome_s", "one ROME edit", f"delta norms differ by {d_norm:.1e}")):
            mb, mn = _median(b, key), _median(n, key)
            lines.append(f"| {row['model']} | {label} | {mb:.1f} | {mn:.1f} | {mn / mb:.2f} | {len(b)} | {same} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from tools.bench.__main__ import _merge, _sections

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the other checkout (a git worktree of the earlier commit)")
    p.add_argument("--models", default="smollm2-135m,gemma-3-270m")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench/results.md")
    args = p.parse_args(argv)
    base, new = Path(args.base).resolve(), Path(__file__).resolve().parents[2]

    def rev(tree):
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True,
                              text=True).stdout.strip()

    import torch

    stamp = (f"_Measured {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, {args.threads} threads, "
             "float32 on CPU._")
    rows = measure(base, new, args.models.split(","), args.rounds, args.threads)
    command = "python -m tools.bench.ab " + " ".join(argv if argv is not None else sys.argv[1:])
    section = markdown(rows, rev(base), rev(new), command, stamp)
    out = Path(args.out)
    old = _sections(out.read_text()) if out.exists() else []
    from factlocate.io import write_text

    text = out.read_text().split("\n## ")[0].strip() if out.exists() else "# factlocate benchmarks"
    write_text(out, text + "\n\n" + "\n\n".join(_merge(old, [section])) + "\n")
    out.with_name("ab.json").write_text(json.dumps(rows, indent=1) + "\n")  # every run, for the record
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
