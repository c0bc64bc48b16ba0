"""Write the example notebooks (outputs stripped) from the cell sources below.

    .venv/bin/python examples/build_notebooks.py

Edit a notebook here, rerun this script, and commit the .ipynb files: they are
stored without outputs, and `make notebooks` executes them into HTML.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, *tags: str):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


MODEL_CELL = '''
# ---- choose the model: the one line to change ----------------------------------------
MODEL = "gemma-3-270m"  # embedded: offline, runs on a laptop CPU
# MODEL = "gpt2-xl"     # the paper's model (1.5B): needs the Hugging Face hub or its cache; use a GPU
# -----------------------------------------------------------------------------------------
MODEL = notebooks.model_spec(MODEL)  # the test suite swaps in a tiny random model here ...
FAST = notebooks.fast_mode()         # ... and asks for fewer samples, facts and steps
'''

# The paper's running example (Figure 6): Pierre Curie worked in physics; ROME makes it medicine.
CURIE_RECORD = '''
record = CounterFactRecord(
    case_id=0,
    prompt="{} works in the field of",
    subject="Pierre Curie",
    target_true="physics",
    target_new="medicine",
    paraphrase_prompts=(
        "Pierre Curie was a French scientist who worked in the field of",
        "Pierre Curie is known for his research in the field of",
        "The scientist Pierre Curie worked in the field of",
    ),
    neighborhood_prompts=(  # other physicists: their answer must stay physics
        "Marie Curie works in the field of",
        "Albert Einstein works in the field of",
        "Niels Bohr works in the field of",
        "Ernest Rutherford works in the field of",
    ),
    generation_prompts=(
        "Pierre Curie often collaborated with",
        "Pierre Curie's greatest accomplishment is",
        "Pierre Curie is best known for",
    ),
)
request = record.request()
request
'''

# ------------------------------------------------------------------ causal_trace.ipynb

CAUSAL_TRACE = [
    md('''
# Causal tracing: where does a model store a fact?

This notebook follows Section 2 of *Locating and Editing Factual Associations in GPT*
(Meng et al. 2022) on a live model. Causal tracing runs the model three ways:

1. **clean**: on the prompt, recording every hidden state and the probability of the
   answer (the *high* score);
2. **corrupted**: with Gaussian noise (3σ, σ the standard deviation of token embeddings
   over the subjects) added to the subject's token embeddings, so the answer mostly
   disappears (the *low* score);
3. **corrupted with restoration**: corrupted again, but one state (a hidden state, an MLP
   output or an attention output at one token and layer) is copied back from the clean run.

The probability of the answer with a state restored, minus the low score, is that state's
**indirect effect**. The states with large effects are where the fact flows through.

By default everything runs on the embedded Gemma-3-270M on a CPU. Change one line below to
use the paper's GPT-2 XL on a GPU.
'''),
    code('''
import numpy as np
import pandas as pd

import factlocate
from factlocate import notebooks, plots, tracing
from factlocate.datasets import known_facts
from factlocate.tracing import facts
'''),
    md("## 1. Load a model"),
    code(MODEL_CELL + '''
SAMPLES = 2 if FAST else 3      # noise samples per trace (the paper: 10; raise it on a GPU)
N_FACTS = 3 if FAST else 4      # known facts averaged in section 5 (the paper: 1,000) ...
FACT_SAMPLES = 2                # ... with 2 noise samples each, to stay quick on a CPU

model = factlocate.load_model(MODEL)
# The paper restores MLP and attention over windows of 10 of GPT-2 XL's 48 layers;
# keep the same fraction of the depth on smaller models.
WINDOW = max(1, round(10 * model.cfg.n_layers / 48))
print(f"{MODEL}: {model.cfg.n_layers} layers, d_model {model.cfg.d_model}, on {model.cfg.device}; "
      f"window {WINDOW} layers")
'''),
    md('''
## 2. What does the model know?

The top three next tokens after a few factual prompts. A trace only makes sense for a fact
the model gets right: its answer is what the trace tries to bring back.
'''),
    code('''
PROMPTS = [
    "The Space Needle is located in the city of",
    "The Eiffel Tower is located in the city of",
    "Michael Jordan plays the sport of",
    "Pierre Curie works in the field of",
]
rows = []
for prompt in PROMPTS:
    top = factlocate.predict(model, prompt, top_k=3)
    rows.append({"prompt": prompt, **{f"#{i + 1}": f"{t['token']!r} ({t['prob']:.2f})" for i, t in enumerate(top)}})
pd.DataFrame(rows)
'''),
    md('''
## 3. Trace one fact, three kinds of state

Each heatmap has the prompt's tokens down the side (the subject's tokens are starred) and
the layers along the bottom. A cell's colour is the probability of the answer when that one
state is restored in the corrupted run; hover over it for the token, the layer and the
probability. Left: single hidden states (the residual stream). Middle: the MLP outputs of a
window of layers around the cell's layer. Right: the attention outputs of such a window.

On GPT-2 XL (the paper's Figure 1) the hidden states show two sites: an *early site* at the
last subject token in the middle layers, and a *late site* at the last token in the upper
layers. The MLP heatmap lights up at the last subject token in the middle layers (the early
site is MLP-driven), while attention matters at the last token, in the later layers, where
it moves the recalled fact to the prediction.
'''),
    code('''
PROMPT, SUBJECT = "The Space Needle is located in the city of", "The Space Needle"
grids = [tracing.GridSpec(kind, window=WINDOW) for kind in ("hidden", "mlp", "attn")]
results = tracing.trace_kinds(model, PROMPT, SUBJECT, grids, tracing.RunSpec(samples=SAMPLES))
plots.trace_heatmaps(results)
''', "readme-figure"),
    code('''
rows = []
for kind, r in results.items():
    i, layer = np.unravel_index(np.argmax(r.scores), r.scores.shape)
    rows.append({"kind": kind, "answer": r.answer, "clean p": r.high_score, "corrupted p": r.low_score,
                 "strongest token": r.input_tokens[r.positions[i]], "layer": int(layer),
                 "p restored": float(r.scores[i, layer])})
pd.DataFrame(rows).round(3)
'''),
    md('''
## 4. Sever the MLPs, or the attention

Why does restoring a hidden state at the last subject token bring the answer back? Trace the
same fact again, but hold every MLP output (or every attention output) at the subject
tokens at its corrupted value, so the restored state can only act through the other path.

On GPT-2 XL (the paper's Figure 3) severing the MLPs removes most of the effect of the
hidden states at the last subject token in the lower and middle layers, while severing
attention changes little: the MLPs at the subject do the recall, which is why ROME edits an
MLP.
'''),
    code('''
severed = {
    "hidden": results["hidden"],
    "MLP severed": tracing.trace(model, PROMPT, SUBJECT, sever="mlp", samples=SAMPLES),
    "attention severed": tracing.trace(model, PROMPT, SUBJECT, sever="attn", samples=SAMPLES),
}
plots.trace_heatmaps(severed)
'''),
    md('''
## 5. Average over known facts

One fact is an anecdote. The paper averages over 1,000 facts the model knows
(`known_1000.json`, shipped with factlocate), grouping tokens into six buckets: the first,
middle and last subject tokens, the first token after the subject, further tokens, and the
last token. Facts the model answers wrongly are skipped. Each traced fact is saved as soon as
it is done, so rerunning the cell resumes. The defaults (4 facts, 2 noise samples each) keep a
CPU run to minutes; raise `N_FACTS` and `FACT_SAMPLES` for smoother averages.

The paper's numbers on GPT-2 XL: the average total effect (clean minus corrupted probability)
is 18.6%. The strongest single hidden state is at the last subject token, with an average
indirect effect (AIE) of 8.7% at layer 15. MLP contributions there peak at 6.6%, while
attention at the last subject token gives only 1.6%; attention matters at the last token.
'''),
    code('''
OUT = notebooks.work_dir("causal_trace", MODEL)  # traced facts are saved here; a rerun resumes
spec = facts.FactSetSpec(model=MODEL, facts="known_1000.json", sever="mlp", window=WINDOW,
                         run=tracing.RunSpec(samples=FACT_SAMPLES))
known = known_facts.load_facts()  # the shipped known_1000.json
if FAST:  # a tiny random model knows no facts: let its own answers stand in for the true ones
    known = [dict(f, attribute=factlocate.predict(model, f["prompt"], top_k=1)[0]["token"].strip() or "?")
             for f in known[:2 * N_FACTS]]
summary = facts.run_facts(model, OUT, spec, n=N_FACTS, facts=known)
print(f"traced {summary['n_traced']} facts the model answers correctly; skipped {summary['n_skipped']}")
'''),
    md('''
The average indirect effect of each kind of state, per token bucket and layer (the paper's
Figure 2, top row).
'''),
    code("plots.average_heatmaps(summary)"),
    md('''
The same at the last subject token and at the last token, with 95% confidence bands (the
paper's Figure 2, bottom row). With a handful of facts the bands are wide.
'''),
    code("plots.average_lines(summary)"),
    md('''
The effect of the hidden state at the last subject token, with and without the MLPs
severed, averaged over the facts (the paper's Figure 3). Where the two bars differ most, the
MLPs carry the fact: the gap is what picks ROME's edit layer.
'''),
    code("plots.severed_bars(summary)"),
    code('''
pd.DataFrame({
    kind: {
        "ATE": k["ate"],
        "best layer, last subject token": k["best_last_subject_layer"],
        "AIE there": k["best_last_subject_aie"],
        "best layer, last token": k["best_last_token_layer"],
        "AIE there ": k["best_last_token_aie"],
    }
    for kind, k in summary["kinds"].items()
}).T.round(3)
'''),
    md('''
**Reading the table.** GPT-2 XL's row for `mlp` has its best last-subject layer at 15–18 of
48; that is where ROME edits (layer 17). On a small model, look for the same shape: a
mid-depth MLP peak at the last subject token, and attention peaking at the last token.
The next notebook, `rome.ipynb`, edits a fact at that layer.
'''),
]

# ------------------------------------------------------------------ rome.ipynb

ROME = [
    md('''
# Rewriting a fact with ROME

Section 3 of the paper treats the MLP output matrix *W* of one middle layer as a linear
key–value memory. The **key** *k\\** is the MLP's hidden activation at the last subject token
(averaged over a few random text prefixes); the **value** *v\\** is optimised so that, written
at that layer and token, it makes the model produce the new object. ROME then inserts the
pair with a rank-one update

*W' = W + Λ (C⁻¹k\\*)ᵀ*, with *Λ = (v\\* − W k\\*) / ((C⁻¹k\\*)ᵀ k\\*)*

where *C* is the uncentred covariance of keys over a text corpus (WikiText-2 here, cached
after the first run), so the update disturbs other keys as little as possible.

We repeat the paper's running example: *Pierre Curie works in the field of physics*, rewritten
to *medicine* (the paper's prompt is "Pierre Curie's area of work is", which small models
continue with "in").
'''),
    code('''
import numpy as np
import pandas as pd
import plotly.express as px
import tempfile
import torch

import factlocate
from factlocate import arch, notebooks, plots, tokens, tracing
from factlocate.datasets import CounterFactRecord
from factlocate.deltas import export
from factlocate.editors.keyvalue import rome
from factlocate.generate import generate
from factlocate.metrics import counterfact as cf
'''),
    md("## 1. Load a model"),
    code(MODEL_CELL + '''
SAMPLES = 2 if FAST else 3      # noise samples for the trace in section 3 (the paper: 10)
GEN_LENGTH = 12 if FAST else 60  # tokens per generated text, counting the prompt

model = factlocate.load_model(MODEL)
print(f"{MODEL}: {model.cfg.n_layers} layers, d_model {model.cfg.d_model}, on {model.cfg.device}")
'''),
    md('''
## 2. The fact and its counterfactual

A CounterFact-style record: the rewrite prompt, paraphrases of it (the edit should
generalise to them), neighbourhood prompts about other subjects with the same true answer
(the edit should leave them alone), and prompts for free generation.
'''),
    code(CURIE_RECORD),
    code('''
def answer_probs(model, record):
    """p(true) and p(new) after every prompt of the record (length-normalised, teacher-forced)."""
    nlls = cf.prompt_nlls(model, record)
    rows = []
    for group, label in [("rewrite_prompts", "rewrite"), ("paraphrase_prompts", "paraphrase"),
                         ("neighborhood_prompts", "neighbour")]:
        for prompt, nll in zip(cf.prompts_of(record)[group], nlls[f"{group}_probs"]):
            rows.append({"group": label, "prompt": prompt, f"p({record.target_true})": np.exp(-nll["target_true"]),
                         f"p({record.target_new})": np.exp(-nll["target_new"])})
    return pd.DataFrame(rows), cf.case_scores(nlls)

before, scores_before = answer_probs(model, record)
print("top tokens:", [(t["token"], round(t["prob"], 3)) for t in factlocate.predict(model, request.text)])
before.round(4)
'''),
    md('''
## 3. Which layer? The trace that justifies it

ROME edits the layer whose MLP carries the fact at the last subject token. The MLP trace of
the rewrite prompt shows where restoring MLP outputs brings the true answer back. On GPT-2 XL
the average MLP effect at the last subject token peaks around layers 15–18 of 48, and the
paper's ROME edits layer 17 (Figure 5 finds generalisation best there). The layer for each
model is set in `configs/rome/<model>.yaml`; for a model without one we take this trace's peak.
'''),
    code('''
window = max(1, round(10 * model.cfg.n_layers / 48))  # the paper's 10 of 48 layers, scaled
mlp_trace = tracing.trace(model, request.text, request.subject, kind="mlp", samples=SAMPLES, window=window)
last_subject = mlp_trace.subject_range[1] - 1
peak = int(np.argmax(mlp_trace.row(last_subject)))

# The shipped config's layer where there is one (configs/rome/<model>.yaml), else this trace's peak.
hparams = rome.load(MODEL, {} if rome.HParams.path_for(MODEL).exists() else {"layer": peak})
if FAST:  # a tiny model: a smaller key-statistics sample and fewer optimisation steps
    hparams = rome.load(MODEL, {"layer": hparams.layer, "stats_tokens": 4000, "v_num_grad_steps": 5,
                                  "context_template_lengths": [[5, 2]]})
print(f"MLP effect at the last subject token {mlp_trace.input_tokens[last_subject]!r} peaks at layer {peak}; "
      f"ROME edits layer {hparams.layer}")
plots.trace_heatmap(mlp_trace)
'''),
    md('''
## 4. Compute and apply the edit

`compute_edit` returns an `EditResult`: the weight delta (one rank-one matrix), the
hyperparameters, timings, and the probabilities of the new and true objects before and after.
It leaves the model as it found it; `apply` writes the delta into the weights.
'''),
    code('''
result = rome.compute_edit(model, [request], hparams)
print(f"delta on {result.deltas[0].name}, shape {tuple(result.deltas[0].delta.shape)}, "
      f"rank {torch.linalg.matrix_rank(result.deltas[0].delta.float()).item()}")
print("p(new), p(true) before:", result.probs_before[0], "\\nafter:", result.probs_after[0])
print({k: round(v, 2) for k, v in result.timings.items()}, "seconds")
'''),
    code('''
original = {d.name: arch.hf_parameter(model, d.name).detach().clone() for d in result.deltas}
ids = tokens.to_tensor(model, tokens.encode(model, request.text))
with torch.no_grad():
    logits_original = model(ids)
result.apply(model)
'''),
    md('''
## 5. Generations before and after

Seeded top-k sampling (k = 5) from the same prompts, with the same seed, on the original and
the edited model. In the paper's Figure 6, GPT-2 XL edited by ROME writes about Pierre Curie
as a physician, consistently across prompts, while keeping the rest of his biography.
'''),
    code('''
prompts = list(record.generation_prompts)
with torch.no_grad():
    after_texts = generate(model, prompts, max_length=GEN_LENGTH, seed=0)
    result.revert(model)
    before_texts = generate(model, prompts, max_length=GEN_LENGTH, seed=0)
    result.apply(model)
for prompt, b, a in zip(prompts, before_texts, after_texts):
    print(f"PROMPT  {prompt}\\nbefore  {b}\\nafter   {a}\\n")
'''),
    md('''
## 6. Paraphrases and neighbours

The probabilities of both objects after every prompt, before and after the edit. ROME's
claims (Table 2): the rewrite prompt now prefers the new object (efficacy), so do its
paraphrases (generalisation), and the neighbours keep their true answer (specificity).
'''),
    code('''
after, scores_after = answer_probs(model, record)
compare = before[["group", "prompt"]].copy()
for col in before.columns[2:]:
    compare[f"{col} before"] = before[col]
    compare[f"{col} after"] = after[col]
display(compare.round(4))
pd.DataFrame({"before": scores_before, "after": scores_after}).T.round(3)
'''),
    code('''
long = pd.concat([before.assign(model="original"), after.assign(model="edited")])
long = long.melt(id_vars=["group", "prompt", "model"], var_name="object", value_name="probability")
fig = px.bar(long, x="prompt", y="probability", color="object", facet_col="model", barmode="group",
             hover_data=["group"], category_orders={"model": ["original", "edited"]},
             title=f"{request.text} → {request.target_new} (was {request.target_true}): "
                   f"rewrite, paraphrase and neighbour prompts, before and after ROME")
fig.update_xaxes(tickangle=35, title=None)
fig.update_layout(height=560, width=1100)
fig
''', "readme-figure"),
    md('''
## 7. Revert: back to the original, bit for bit

Reverting restores a saved copy of the original weights, so the model is exactly as before,
not just approximately (float addition is not exactly invertible).
'''),
    code('''
result.revert(model)
with torch.no_grad():
    logits_reverted = model(ids)
same_weights = all(torch.equal(arch.hf_parameter(model, name), w) for name, w in original.items())
print("weights identical to the original:", same_weights)
print("logits identical to the original:", torch.equal(logits_original, logits_reverted))
print("top token again:", factlocate.predict(model, request.text, top_k=1)[0])
assert same_weights
'''),
    md('''
## 8. Export the edited model

Two ways to keep an edit: the delta alone (a small safetensors file, re-applied with
`factlocate.deltas.load`), or the whole edited model as a Hugging Face folder that
`transformers` (or factlocate) loads like any other. Here both go to a temporary folder, and
the exported model is reloaded to check that it still says *medicine*.
'''),
    code('''
folder = tempfile.TemporaryDirectory()
delta_file = result.save(f"{folder.name}/pierre-curie.safetensors")
print(f"delta: {delta_file.name}, {delta_file.stat().st_size / 1e6:.1f} MB")
with result.applied(model):
    exported = export(model, f"{folder.name}/edited-model")
print("exported model:", sorted(p.name for p in exported.iterdir()))
reloaded = factlocate.load_model(str(exported))
print("reloaded model's top token:", factlocate.predict(reloaded, request.text, top_k=1)[0])
del reloaded
folder.cleanup()
'''),
]

# ------------------------------------------------------------------ compare_editors.ipynb

COMPARE = [
    md('''
# ROME and the baselines on one fact

The paper's Figure 6 shows generations after rewriting Pierre Curie's area of work from
*physics* to *medicine* with each method. Fine-tuning (FT) makes the model say *medicine* but bleeds into
other physicists; constrained fine-tuning (FT+L) keeps the neighbours but fails on
paraphrases; ROME does both. On the full CounterFact benchmark (Table 2, GPT-2 XL):

| editor | efficacy ES | paraphrase PS | neighbourhood NS |
|---|---|---|---|
| FT | 100.0 | 87.9 | 40.4 |
| FT+L | 99.1 | 48.7 | 70.3 |
| ROME | 100.0 | 96.4 | 75.4 |

AttnEdit (Appendix I) fine-tunes the attention weights of one upper layer: it reproduces the
rewrite prompt but does not generalise to paraphrases.

Here we apply every available editor to the same fact on the same model and compare.
'''),
    code('''
import numpy as np
import pandas as pd
import plotly.express as px
import torch

import factlocate
from factlocate import editors, notebooks
from factlocate.datasets import CounterFactRecord
from factlocate.generate import generate
from factlocate.metrics import counterfact as cf
'''),
    code(MODEL_CELL + '''
GEN_LENGTH = 12 if FAST else 40  # tokens per generated text, counting the prompt
EDITORS = ["rome", "ft", "ft-l", "attn-edit"]
# Each editor's hyperparameters come from configs/<editor>/<model>.yaml. A tiny model has
# only 4 layers and needs no long optimisation:
OVERRIDES = {
    "rome": {"layer": 1, "stats_tokens": 4000, "v_num_grad_steps": 5, "context_template_lengths": [[5, 2]]},
    "ft": {"layer": 1, "num_steps": 3}, "ft-l": {"layer": 0, "num_steps": 3},
    "attn-edit": {"layer": 2, "num_steps": 3},
} if FAST else {}

model = factlocate.load_model(MODEL)
print(f"{MODEL}: {model.cfg.n_layers} layers; editors: {', '.join(EDITORS)}")
'''),
    md("## The fact"),
    code(CURIE_RECORD),
    md('''
## Edit with each method

Every editor has the same interface: `compute_edit(model, requests, hparams)` returns an
`EditResult` whose deltas we apply only while measuring (`with result.applied(model)`), so
each editor starts from the original weights. The metrics are CounterFact's, on this one
case: success (ES, PS, NS: 1 or 0 per prompt, averaged) and magnitude (EM, PM, NM: the
probability margin of the right object).
'''),
    code('''
def measure(model):
    nlls = cf.prompt_nlls(model, record)
    probs = {group: np.mean([np.exp(-r["target_new" if group != "neighborhood_prompts" else "target_true"])
                             for r in nlls[f"{group}_probs"]])
             for group in cf.GROUPS}
    texts = generate(model, list(record.generation_prompts), max_length=GEN_LENGTH, seed=0)
    return cf.case_scores(nlls), probs, texts

scores, probs, texts = {}, {}, {}
scores["unedited"], probs["unedited"], texts["unedited"] = measure(model)
seconds = {"unedited": 0.0}
for name in EDITORS:
    module = editors.get(name)
    hparams = module.HParams.load(MODEL, OVERRIDES.get(name))
    result = module.compute_edit(model, [request], hparams)
    seconds[name] = sum(result.timings.values())
    with result.applied(model):
        scores[name], probs[name], texts[name] = measure(model)
'''),
    md("## Metrics"),
    code('''
table = pd.DataFrame(scores).T[["ES", "PS", "NS", "EM", "PM", "NM"]] * 100
table["edit seconds"] = pd.Series(seconds)
table.round(1)
'''),
    code('''
bars = pd.DataFrame(probs).T.rename(columns={
    "rewrite_prompts": f"p({record.target_new}), rewrite prompt",
    "paraphrase_prompts": f"p({record.target_new}), paraphrases",
    "neighborhood_prompts": f"p({record.target_true}), neighbours",
})
fig = px.bar(bars.reset_index(names="editor").melt(id_vars="editor", var_name="measure", value_name="probability"),
             x="measure", y="probability", color="editor", barmode="group",
             title=f"{request.text} {request.target_true} → {request.target_new}: "
                   "efficacy, generalisation and specificity of each editor")
fig.update_layout(height=450, width=1000, xaxis_title=None)
fig
''', "readme-figure"),
    md('''
## Generations side by side

The same seeded samples (top-k 5, seed 0) from each edited model, as in the paper's
Figure 6. Look for whether the new fact shows up in free text, and whether the text stays
fluent.
'''),
    code('''
with pd.option_context("display.max_colwidth", None):
    display(pd.DataFrame(texts, index=list(record.generation_prompts)).T.style.set_properties(
        **{"text-align": "left", "white-space": "normal"}))
'''),
    md('''
**What to expect.** On GPT-2 XL, FT reaches the rewrite and the paraphrases but also moves
the neighbours to *medicine* (low NS); FT+L keeps the neighbours but rarely generalises;
AttnEdit changes the rewrite prompt only; ROME gets all three. A small model and a single
fact make the numbers noisy: `factlocate eval --dataset counterfact-sample --editor rome` runs the
benchmark over many cases.
'''),
]


def write(name: str, cells: list) -> Path:
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
    })
    for i, cell in enumerate(nb.cells):  # stable ids: rebuilding gives the same file
        cell.id = f"{name.replace('_', '-')}-{i:02d}"
    nbformat.validate(nb)
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def main() -> None:
    for name, cells in (("causal_trace", CAUSAL_TRACE), ("rome", ROME), ("compare_editors", COMPARE)):
        print(write(name, cells))


if __name__ == "__main__":
    main()
