"""One ROME edit: factlocate against the original code (kmeng01/rome), side by side, on the GPT-2-small shape.

    ROME_SRC=/path/to/rome python -m tools.bench --only original

`ROME_SRC` is a checkout of kmeng01/rome or its git directory (the bench reads `rome/` and `util/` at HEAD).
The original code is not shipped with factlocate; it is copied into a temporary folder with two changes, and
run in this process:

* its hard-coded device string becomes the model's device (the code writes it literally in four places);
* the unused `matplotlib.style` import in `compute_v.py` is dropped (matplotlib is not a factlocate dependency).

The model is GPT-2 small's shape (12 layers, d_model 768, vocabulary 50,257) with random weights, built
here (no hub), and loaded twice: as a Hugging Face model for the original code and as a bridge for
factlocate. Both sides get the same request, the same context templates (factlocate's, handed to the original
through its template cache), the same hyperparameters (the paper's gpt2-medium values at the given layer)
and the same key statistics (C from 10,000 WikiText-2 tokens; the original is handed C⁻¹ through its
inverse-covariance cache, as it would hold after its first edit). So the timed work is k̄, v* and the update
on both sides: no statistics, no template sampling. Each side's whole call is timed, wall clock, and factlocate's
includes the probabilities it reports before and after the edit.

The runs alternate (original, factlocate, factlocate, original, ...) after one warm-up call each; the
largest relative difference between the two rank-one deltas is reported with each side's step count.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SRC_ENV = "ROME_SRC"
REQUEST = {"prompt": "The mother tongue of {} is", "subject": "Danielle Darrieux",
           "target_new": {"str": "English"}}
HPARAMS = {"fact_token": "subject_last", "v_num_grad_steps": 20, "v_lr": 0.5, "v_weight_decay": 0.5,
           "clamp_norm_factor": 3, "kl_factor": 0.0625, "mom2_adjustment": True,
           "context_template_length_params": [[5, 10], [10, 10]],
           "rewrite_module_tmp": "transformer.h.{}.mlp.c_proj", "layer_module_tmp": "transformer.h.{}",
           "mlp_module_tmp": "transformer.h.{}.mlp", "attn_module_tmp": "transformer.h.{}.attn",
           "ln_f_module": "transformer.ln_f", "lm_head_module": "transformer.wte",
           "mom2_dataset": "wikipedia", "mom2_n_samples": 100000, "mom2_dtype": "float32"}
LAYERS = (4, 9)
ROUNDS = 2
STATS_TOKENS = 10_000


def export_original(src: Path, dest: Path, device: str) -> Path:
    """`rome/` and `util/` of kmeng01/rome at `src` (a checkout or a git directory), runnable on `device`."""
    dest.mkdir(parents=True, exist_ok=True)
    if (src / "rome").is_dir():
        for part in ("rome", "util"):
            subprocess.run(["cp", "-r", str(src / part), str(dest)], check=True)
    else:
        archive = subprocess.run(["git", f"--git-dir={src}", "archive", "HEAD", "rome", "util"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    hard_coded = '"' + "cu" + 'da"'
    for path in list((dest / "rome").glob("*.py")) + list((dest / "util").glob("*.py")):
        text = path.read_text().replace(hard_coded, repr(device)).replace(
            "from matplotlib.style import context\n", "")
        path.write_text(text)
    (dest / "globals.yml").write_text('RESULTS_DIR: "results"\nDATA_DIR: "data"\nSTATS_DIR: "data/stats"\n'
                                      'HPARAMS_DIR: "hparams"\nREMOTE_ROOT_URL: ""\n')
    return dest


def build_gpt2_small(folder: Path, seed: int = 0) -> Path:
    """Random weights in GPT-2 small's shape, with the tiny models' BPE tokenizer (the vocabulary stays 50,257)."""
    from transformers import AutoModelForCausalLM, GPT2Config

    from factlocate.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(GPT2Config(bos_token_id=0, eos_token_id=0, pad_token_id=0))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def _inside(folder: Path):
    """Import the original code from `folder` (it reads globals.yml from the working directory)."""
    before, cwd = list(sys.path), os.getcwd()
    sys.path.insert(0, str(folder))
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path[:] = before


def _original_edit(hf_model, tok, rome_main, hparams) -> tuple[float, torch.Tensor, int]:
    """Seconds for `apply_rome_to_model`, the change it made to the weight, and its v* steps."""
    name = f"{hparams.rewrite_module_tmp.format(hparams.layers[0])}.weight"
    steps = io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stdout(steps):
        _, saved = rome_main.apply_rome_to_model(hf_model, tok, [dict(REQUEST)], hparams, return_orig_weights=True)
    seconds = time.perf_counter() - t
    weight = hf_model.get_parameter(name)
    delta = (weight.detach() - saved[name]).clone()
    with torch.no_grad():
        weight[...] = saved[name]
    return seconds, delta, steps.getvalue().count("loss ")


def _factlocate_edit(model, rome, hp, cov, templates) -> tuple[float, torch.Tensor, int]:
    from factlocate.editors.base import EditRequest

    request = EditRequest(REQUEST["prompt"], REQUEST["subject"], REQUEST["target_new"]["str"])
    t = time.perf_counter()
    result = rome.compute_edit(model, request, hp, stats=cov, templates=templates, progress=False)
    seconds = time.perf_counter() - t
    return seconds, result.deltas[0].delta, len(result.extra["per_request"][0]["losses"])


def bench_layer(layer: int, folder: Path, original: Path, model, hf_model, tok) -> dict:
    from factlocate.editors.keyvalue import context_templates, key_stats, rome

    hp = rome.load("gpt2-medium", {"layer": layer, "stats_tokens": STATS_TOKENS})
    with tempfile.TemporaryDirectory() as tmp:
        cov = key_stats.key_stats(model, layer, hp.stats_corpus, STATS_TOKENS, hp.stats_dtype,
                                  path=Path(tmp) / "stats.pt", progress=False).cov
    templates = context_templates.context_templates(model, hp.context_template_lengths, hp.seed)
    with _inside(original):
        rome_main = importlib.import_module("rome.rome_main")
        compute_u = importlib.import_module("rome.compute_u")
        hparams_cls = importlib.import_module("rome.rome_hparams").ROMEHyperParams
        hparams = hparams_cls(**{**HPARAMS, "layers": [layer], "v_loss_layer": hf_model.config.n_layer - 1})
        rome_main.CONTEXT_TEMPLATES_CACHE = list(templates)
        key = (hf_model.config._name_or_path.replace("/", "_"), hparams.rewrite_module_tmp.format(layer))
        compute_u.inv_mom2_cache[key] = torch.inverse(cov.double()).float()
        runs = {"original": [], "factlocate": []}
        order = ["original", "factlocate"]
        calls = {"original": lambda: _original_edit(hf_model, tok, rome_main, hparams),
                 "factlocate": lambda: _factlocate_edit(model, rome, hp, cov, templates)}
        warm = {side: calls[side]() for side in order}  # warm-up, not timed
        for r in range(ROUNDS):
            for side in order if r % 2 == 0 else order[::-1]:
                runs[side].append(calls[side]())
    mine, theirs = warm["factlocate"][1], warm["original"][1]
    theirs = theirs if theirs.shape == mine.shape else theirs.T
    per = {side: sorted(s for s, _, _ in runs[side]) for side in runs}
    median = {side: per[side][len(per[side]) // 2] if len(per[side]) % 2 else
              sum(per[side][len(per[side]) // 2 - 1:len(per[side]) // 2 + 1]) / 2 for side in per}
    return {"layer": layer, "original_s": median["original"], "factlocate_s": median["factlocate"],
            "runs": {side: [round(s, 2) for s, _, _ in runs[side]] for side in runs},
            "steps": {side: warm[side][2] for side in warm},
            "rel_diff": float((mine - theirs).abs().max() / theirs.abs().max())}


def run() -> str | None:
    """The section's markdown; None (the earlier table stays) without a checkout of the original code."""
    src = os.environ.get(SRC_ENV)
    heading = "## ROME against the original code (kmeng01/rome), one edit, GPT-2-small shape"
    if not src or not Path(src).exists():
        print(f"set {SRC_ENV} to a checkout of kmeng01/rome (or its git directory) to run this section")
        return None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from factlocate import load_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_gpt2_small(Path(tmp) / "gpt2-small-shape")
        model = load_model(str(folder))
        device = str(next(model.parameters()).device)
        original = export_original(Path(src), Path(tmp) / "original", device)
        hf_model = AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
        tok = AutoTokenizer.from_pretrained(folder)
        for layer in LAYERS:
            rows.append(bench_layer(layer, folder, original, model, hf_model, tok))
    return table(rows, heading, src)


def _commit(src: str) -> str:
    args = ["git", f"--git-dir={src}"] if not (Path(src) / "rome").is_dir() else ["git", "-C", src]
    out = subprocess.run(args + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def table(rows: list[dict], heading: str, src: str) -> str:
    lines = [
        heading, "",
        f"kmeng01/rome at {_commit(src)}, run in this process on the model's device (its device string and an "
        "unused matplotlib import changed, nothing else). Random GPT-2-small-shaped weights (12 layers, "
        "d_model 768, vocabulary 50,257); request \"The mother tongue of Danielle Darrieux is\" -> English; the "
        "paper's gpt2-medium hyperparameters at the given layer (20 v* steps at most); the same templates and "
        f"C on both sides (C from {STATS_TOKENS:,} WikiText-2 tokens, not timed). Median wall seconds of "
        f"{ROUNDS} alternated calls per side after one warm-up each; factlocate's call includes its before/after "
        "probabilities. Relative difference: the largest |Δ factlocate − Δ original| over the largest |Δ original|.",
        "",
        "| layer | original s | factlocate s | speed-up | calls (original; factlocate) | v* steps (original, factlocate) | relative difference of the deltas |",
        "|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['layer']} | {r['original_s']:.2f} | {r['factlocate_s']:.2f} | "
            f"**{r['original_s'] / r['factlocate_s']:.1f}x** | {r['runs']['original']}; {r['runs']['factlocate']} | "
            f"{r['steps']['original']}, {r['steps']['factlocate']} | {r['rel_diff']:.1e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
