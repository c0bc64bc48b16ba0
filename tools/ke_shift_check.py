"""Which part of KE's update moves the neighbours: the rescaled gradient (∇M ⊙ A) or the shift (B).

    python -m tools.ke_shift_check --model smollm2-135m --variants ke,ke-cf --n 20 \
        --out docs/report/smollm2-135m/ke-shift-check.json

KE's update of a matrix is ΔM = s · (∇M ⊙ A + B), with s = max_scale · sigmoid(η) (`editors/hypernetworks/ke_net.py`).
The gradient term is a rescaled fine-tuning gradient, so it acts on inputs along the edit's own keys. The
shift B = softmax(b_row) ⊗ b_col adds (x · softmax(b_row)) b_col to the output for any input x: a fixed
direction, scaled by a weighted mean of the input. Each of the first `n` CounterFact requests (the sequential
run's selection) is edited alone on the unedited weights three times, with the full update, the gradient term
only and the shift only, and measured on its rewrite prompt (ES) and its neighbourhood prompts (NS). The
Frobenius norms of both terms are summed over the edited matrices.

What the gradient term reads: its rows are the matrices' inputs at the positions that predict the target,
first of all the prompt's last token. `key_cos_neighbours` is the cosine between the rewrite prompt's
last-token input to the first edited matrix and each neighbourhood prompt's (same relation, other subject),
`key_cos_others` the same against the other requests' rewrite prompts (other subjects, mostly other
relations). The JSON keeps the rows, the means and the command.
"""
from __future__ import annotations

import argparse

import tools

PARTS = ("full", "gradient", "shift")


def split_update(net, model, inners, request) -> dict[str, dict[str, "torch.Tensor"]]:
    """{part: {matrix name: ΔM [d_in, d_out]}} for one request: the full update and its two terms."""
    import torch

    from factlocate import tokens
    from factlocate.editors.hypernetworks import hypernet

    grads = hypernet.full_gradient(hypernet.edit_gradient(model, inners, request.text, request.target_new))
    ids = torch.tensor(tokens.encode(model, request.text) + tokens.encode_target(model, request.target_new))
    out = {part: {} for part in PARTS}
    with torch.no_grad():
        c = net.condition(ids)
        for name, m in zip(net.names, net.matrices):
            a, b, scale = m.factors(c, net.max_scale)
            out["gradient"][name] = scale * (grads[name] * a)
            out["shift"][name] = scale * b
            out["full"][name] = out["gradient"][name] + out["shift"][name]
    return out


def last_input(model, inner, prompt: str) -> "torch.Tensor":
    """The input of matrix `inner` at the last token of `prompt`."""
    import torch

    from factlocate import arch, tokens

    kept = {}
    hook = arch.component(model, inner.layer, inner.path).register_forward_hook(
        lambda module, args, output: kept.update(u=args[0][0, -1].detach().float()))
    try:
        with torch.no_grad():
            model(torch.tensor([tokens.encode(model, prompt)]))
    finally:
        hook.remove()
    return kept["u"]


def key_cosines(model, inner, records) -> list[dict]:
    """Per record: mean cosine of its rewrite prompt's last-token input with its neighbours' and the others'."""
    import torch.nn.functional as F

    keys = [last_input(model, inner, r.rewrite_prompt) for r in records]
    out = []
    for i, r in enumerate(records):
        near = [F.cosine_similarity(keys[i], last_input(model, inner, p), 0) for p in r.neighborhood_prompts]
        far = [F.cosine_similarity(keys[i], k, 0) for j, k in enumerate(keys) if j != i]
        out.append({"key_cos_neighbours": float(sum(near) / len(near)), "key_cos_others": float(sum(far) / len(far))})
    return out


def main(argv=None) -> int:
    from tqdm.auto import tqdm

    from factlocate import datasets, editors, load_model
    from factlocate import deltas as deltas_mod
    from factlocate.editors.hypernetworks import hyper_editor, hypernet, ke
    from factlocate.evaluation import sequential
    from factlocate.io import write_json
    from factlocate.metrics.success import success

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--dataset", default="counterfact-sample")
    p.add_argument("--variants", default="ke,ke-cf")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    ds = datasets.load(args.dataset, allow_download=False)
    records, _ = sequential.select(ds.records, args.n)
    model = load_model(args.model)
    unedited = {"ES": success(model, records, "rewrite"),
                "NS": success(model, records, "neighborhood")}
    first = hypernet.inner_params(model, 3)[0]  # the first matrix KE edits at its default n_blocks (3)
    cosines = key_cosines(model, first, records)
    unedited["key_cos_neighbours"] = sum(c["key_cos_neighbours"] for c in cosines) / len(cosines)
    unedited["key_cos_others"] = sum(c["key_cos_others"] for c in cosines) / len(cosines)
    rows, means = [], {}
    for name in args.variants.split(","):
        hp = editors.get(name).load_hparams(args.model)
        net, meta = hyper_editor.load_network(model, name, hp, ke.network)
        inners = {i.name: i for i in hypernet.inner_params(model, meta["params"]["n_blocks"])}
        for record in tqdm(records, desc=name):
            parts = split_update(net, model, list(inners.values()), record.request())
            row = {"variant": name, "case_id": record.case_id,
                   "norm_gradient": sum(float(d.norm()) for d in parts["gradient"].values()),
                   "norm_shift": sum(float(d.norm()) for d in parts["shift"].values())}
            for part in PARTS:
                deltas = [hypernet.to_weight_delta(model, inners[n], d) for n, d in parts[part].items()]
                with deltas_mod.applied(model, deltas):
                    row[f"ES_{part}"] = success(model, [record], "rewrite")
                    row[f"NS_{part}"] = success(model, [record], "neighborhood")
            rows.append(row)
        mine = [r for r in rows if r["variant"] == name]
        means[name] = {k: sum(r[k] for r in mine) / len(mine) for k in mine[0] if k not in ("variant", "case_id")}
        print(name, {k: round(v, 3) for k, v in means[name].items()}, flush=True)
    command = tools.command("ke_shift_check", argv)
    write_json(args.out, {"command": command, "model": args.model, "dataset": ds.name, "n": len(records),
                          "key_matrix": first.name, "unedited": unedited, "means": means, "rows": rows,
                          "key_cosines": cosines})
    print(f"unedited {unedited}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    tools.run("ke_shift_check", main)
