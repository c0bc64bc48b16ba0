"""Training MEND and KE: data, the meta-objective, checkpoints that resume exactly, and validation.

    factlocate train-editor --editor mend --model smollm2-135m --data cf:counterfact-train.json --out DIR

Data (`examples`), never a record the evaluation uses (shipped CounterFact case ids and zsRE questions are
dropped, and counted):

* `cf`: CounterFact's training split (EasyEdit format): edit prompt -> target_new, equivalence =
  rephrase_prompt, locality = locality_prompt;
* `zsre`: zsRE (MEND format): src -> answers[0], equivalence = rephrase, locality = "loc? loc_ans";
* `wikitext`: the paper's "out of the box" task: a WikiText passage's first 10-30 tokens (seeded) -> the
  model's own top-k sampled 10-token continuation (400 such edits); the passage is its own equivalence
  input; another passage is the locality input. Made once and kept in DIR/data.json.

The meta-objective of one example (as the reference's trainer): the hypernetwork turns the edit's
fine-tuning gradient into an update ΔM of every edited matrix; with the update acting,

    loss = cedit · NLL(target | equivalence input) + cloc · KL(original ‖ edited) over the locality input.

`batch` examples are averaged per Adam step. Example order is a seeded permutation, so step s always sees
the same examples. Every `checkpoint_every` steps DIR/last.safetensors (network, buffers, Adam state) is
rewritten atomically; a rerun resumes from it and reaches the same weights as an uninterrupted run. Every
`val_every` steps the loss on `val_size` held-out examples is measured; DIR/best.safetensors keeps the best,
and training stops after `patience` validations without improvement. DIR/log.json has the curves.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from factlocate.editors.hypernetworks import hypernet
from factlocate.errors import FactlocateError
from factlocate.identity import identity
from factlocate.io import atomic_path, read_json, write_json
from factlocate.runfolder import RunFolder

DATA_KINDS = ("cf", "zsre", "wikitext")


# ---------------------------------------------------------------- data


def _shipped(name: str):
    with resources.files("factlocate.data").joinpath(name).open(encoding="utf-8") as f:
        return json.load(f)


def _data_file(kind: str, path: str | None) -> Path:
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FactlocateError(f"training data file {p} does not exist")
        return p
    raise FactlocateError(f"--data {kind} needs its file: --data {kind}:PATH (e.g. counterfact-train.json, "
                          "zsre_mend_train-1k.json, wiki.valid.tokens)")


def _test_texts() -> set[str]:
    """Every text of the shipped datasets' test splits: no training example may hold one (`datasets.leakage`)."""
    from factlocate import datasets
    from factlocate.datasets import leakage

    records = [r for name in ("counterfact-sample", "zsre-sample") for r in datasets.load(name).split("test")]
    return leakage.all_texts(records)


def _from_cf(raws: list) -> tuple[list[hypernet.Example], int]:
    """CounterFact-style training rows, less every shipped evaluation record (by case id) and every row that shares
    a text with a test record, whatever the field."""
    from factlocate.datasets.leakage import example_texts

    evaluated, test = {r["case_id"] for r in _shipped("counterfact_sample.json")}, _test_texts()
    out = [hypernet.Example(r["prompt"], r["target_new"], r["rephrase_prompt"], r["locality_prompt"])
           for r in raws if r["case_id"] not in evaluated and not example_texts(r) & test]
    return out, len(raws) - len(out)


def _from_zsre(raws: list) -> tuple[list[hypernet.Example], int]:
    from factlocate.datasets.leakage import example_texts

    evaluated, test = {r["src"] for r in _shipped("zsre_sample.json")}, _test_texts()
    out = [hypernet.Example(r["src"], r["answers"][0], r["rephrase"], f"{r['loc']}? {r['loc_ans']}")
           for r in raws if r["src"] not in evaluated and r.get("answers") and not example_texts(r) & test]
    return out, len(raws) - len(out)


def _wikitext(model, path: Path, n: int, seed: int) -> list[hypernet.Example]:
    """Passages of WikiText cut to 10-30 tokens (seeded), each with the model's sampled 10-token continuation.

    The examples depend only on the model, the file, `n` and `seed`, so they are cached per model
    (`cache_dir()/hypernet-data/`) and MEND and KE trained on WikiText share them.
    """
    from factlocate.models import cache_dir

    text = path.read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    cached = cache_dir() / "hypernet-data" / f"{identity(model).key}_wikitext-{digest}_n{n}_seed{seed}.json"
    if cached.exists():
        return [hypernet.Example(**x) for x in read_json(cached)]
    out = _sample_wikitext(model, text, n, seed)
    write_json(cached, [asdict(x) for x in out])
    return out


def _sample_wikitext(model, text: str, n: int, seed: int) -> list[hypernet.Example]:
    from factlocate import tokens
    from factlocate.datasets.corpus import text_lines
    from factlocate.generate import generate

    lines = [x for x in text_lines(text.splitlines()) if len(x.split()) > 40]
    rs = np.random.RandomState(seed)
    picks = rs.permutation(len(lines))[: 2 * n]
    out = []
    for k in tqdm(range(n), desc="wikitext edits", leave=False):
        ids = tokens.encode(model, lines[picks[k]], bos=False)[: int(rs.randint(10, 31))]
        prompt = model.tokenizer.decode(ids)
        locality = model.tokenizer.decode(tokens.encode(model, lines[picks[n + k]], bos=False)[:32])
        n_prompt = len(tokens.encode(model, prompt))
        text = generate(model, [prompt], max_length=n_prompt + 10, top_k=5, seed=seed + k)[0]
        target = text[len(prompt):].strip() if text.startswith(prompt) else ""
        out.append(hypernet.Example(prompt, target or "the", prompt, locality))
    return out


def examples(model, data: str, out: Path, seed: int, n_wikitext: int = 400) -> tuple[list, list, dict]:
    """(training examples, validation examples, notes) for `kind` or `kind:PATH`."""
    kind, _, path = data.partition(":")
    if kind not in DATA_KINDS:
        raise FactlocateError(f"unknown training data {data!r}: use cf, zsre or wikitext (with :PATH)")
    cached = out / "data.json"
    if cached.exists():
        saved = read_json(cached)
        items, dropped = [hypernet.Example(**x) for x in saved["examples"]], saved["dropped"]
    else:
        file = _data_file(kind, path)
        if kind == "wikitext":
            items, dropped = _wikitext(model, file, n_wikitext, seed), 0
        else:
            raws = json.loads(file.read_text(encoding="utf-8"))
            items, dropped = (_from_cf if kind == "cf" else _from_zsre)(raws)
        write_json(cached, {"data": data, "dropped": dropped, "examples": [asdict(x) for x in items]})
    order = np.random.RandomState(seed).permutation(len(items))
    n_val = max(1, len(items) // 20)
    val = [items[i] for i in order[:n_val]]
    train = [items[i] for i in order[n_val:]]
    return train, val, {"n_train": len(train), "n_val": len(val), "dropped_evaluated": dropped}


# ---------------------------------------------------------------- the meta-objective


def meta_loss(model, inners, net, update_fn, ex: hypernet.Example, cedit: float, cloc: float) -> dict:
    """The losses of one example, with the hypernetwork's update acting (differentiable in the network)."""
    updates = update_fn(net, model, inners, ex)
    with torch.no_grad():
        base, mask = hypernet.locality_logp(model, [ex.locality])
    with hypernet.added(model, inners, updates):
        l_edit = hypernet.nll(model, [ex.rephrase], [ex.target])
        edited, _ = hypernet.locality_logp(model, [ex.locality])
    l_loc = hypernet.kl_loc(base, edited, mask)
    return {"loss": cedit * l_edit + cloc * l_loc, "edit": l_edit, "loc": l_loc}


# ---------------------------------------------------------------- checkpoints


def _pack(net, opt, meta: dict) -> tuple[dict, dict]:
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous().clone()
    return tensors, {"factlocate": json.dumps(meta)}


def save(path: Path, net, opt, meta: dict) -> None:
    from safetensors.torch import save_file

    tensors, metadata = _pack(net, opt, meta)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    if not path.is_file():
        raise FactlocateError(f"no checkpoint at {path}")
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads((f.metadata() or {})["factlocate"])


def restore(net, opt, tensors: dict) -> None:
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    if opt is None:
        return
    state = opt.state_dict()
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            state["state"].setdefault(int(i), {})[name] = v
    opt.load_state_dict(state)


def check_model(meta: dict, model, path: Path, train_hint: str) -> None:
    """A checkpoint trained for another model (or other weights) is refused."""
    want = identity(model).key
    if meta.get("model_key") != want:
        raise FactlocateError(f"{path} was trained for {meta.get('model_key')!r}, not this model ({want}): "
                              f"train one with {train_hint}")


# ---------------------------------------------------------------- the loop


@dataclass(frozen=True)
class Schedule:
    steps: int
    batch: int
    val_every: int
    val_size: int
    patience: int
    checkpoint_every: int
    seed: int


def train(model, net, update_fn, params: dict, schedule: Schedule, data: str, out: str | Path,
          cedit: float, cloc: float, lr: float, lr_lr: float | None, editor: str, progress: bool = True) -> dict:
    """Train `net` (resuming from DIR/last.safetensors); return the log. `params` is saved in checkpoints.

    DIR is a run folder (`factlocate.runfolder`): a rerun with other settings (data, network, schedule, learning
    rates, loss weights) is refused instead of resuming someone else's optimiser state, and done.json marks a
    finished training."""
    out = Path(out)
    folder = RunFolder(out).open({"editor": editor, "model_key": identity(model).key, "data": data, "params": params,
                                  "schedule": asdict(schedule), "lr": lr, "lr_lr": lr_lr, "cedit": cedit,
                                  "cloc": cloc})
    torch.manual_seed(schedule.seed)
    inners = hypernet.inner_params(model, params["n_blocks"])
    train_set, val_set, notes = examples(model, data, out, schedule.seed)
    val_set = val_set[: schedule.val_size]
    groups = [{"params": [p for n, p in net.named_parameters() if n != "edit_lrs"], "lr": lr}]
    if lr_lr is not None and hasattr(net, "edit_lrs"):
        groups.append({"params": [net.edit_lrs], "lr": lr_lr})
    opt = torch.optim.Adam(groups)
    meta = {"editor": editor, "model": identity(model).spec, "model_key": identity(model).key, "data": data,
            "params": params, "schedule": asdict(schedule), "inner_params": [i.name for i in inners], **notes}
    log = {"train": [], "val": [], "best_val": None, "since_best": 0, "step": 0, "seconds": 0.0}
    last = out / "last.safetensors"
    if last.exists():
        tensors, saved = read(last)
        check_model(saved, model, last, f"factlocate train-editor --editor {editor} --model {identity(model).spec}")
        restore(net, opt, tensors)
        log = saved["log"]
    order = np.random.RandomState(schedule.seed + 1).permutation(len(train_set))
    bar = tqdm(total=schedule.steps, initial=log["step"], desc=f"train {editor}", disable=not progress)
    net.train()
    while log["step"] < schedule.steps and log["since_best"] < schedule.patience:
        start = time.perf_counter()
        step = log["step"]
        opt.zero_grad()
        parts = []
        for j in range(schedule.batch):
            ex = train_set[order[(step * schedule.batch + j) % len(order)]]
            losses = meta_loss(model, inners, net, update_fn, ex, cedit, cloc)
            (losses["loss"] / schedule.batch).backward()
            parts.append({k: float(v.detach()) for k, v in losses.items()})
        opt.step()
        log["step"] = step + 1
        log["train"].append({"step": step + 1, **{k: float(np.mean([p[k] for p in parts])) for k in parts[0]}})
        log["seconds"] += time.perf_counter() - start
        bar.update()
        bar.set_postfix(loss=f"{log['train'][-1]['loss']:.3f}")
        if log["step"] % schedule.val_every == 0 or log["step"] == schedule.steps:
            val = validate(model, inners, net, update_fn, val_set, cedit, cloc)
            log["val"].append({"step": log["step"], **val})
            if log["best_val"] is None or val["loss"] < log["best_val"]:
                log["best_val"], log["since_best"] = val["loss"], 0
                save(out / "best.safetensors", net, opt, {**meta, "log": log})
            else:
                log["since_best"] += 1
        if log["step"] % schedule.checkpoint_every == 0 or log["step"] == schedule.steps:
            save(last, net, opt, {**meta, "log": log})
    bar.close()
    save(last, net, opt, {**meta, "log": log})
    write_json(out / "log.json", {**meta, "log": log, "steps_per_second": log["step"] / max(log["seconds"], 1e-9)})
    folder.finish({"steps": log["step"], "best_val": log["best_val"]})
    return log


def validate(model, inners, net, update_fn, val_set, cedit: float, cloc: float) -> dict:
    net.eval()
    parts = []
    for ex in val_set:
        with torch.no_grad():  # the edit's own gradient switches autograd back on where it needs it
            losses = meta_loss(model, inners, net, update_fn, ex, cedit, cloc)
        parts.append({k: float(v) for k, v in losses.items()})
    net.train()
    return {k: float(np.mean([p[k] for p in parts])) for k in parts[0]}
