"""The page's own MEND and KE training: a section before the tables, so their checkpoints, data and time are on it.

`ReportSettings.train` maps each trained variant to its data (`{"mend-cf": "cf:counterfact-train.json", ...}`).
Each is trained into DIR/training/<variant> (`train-editor`'s resumable folder), and the tables and Figure 6 edit
with that checkpoint (`overrides`). With no `train` entries the section has nothing to do, and the editors read
the cache's checkpoints as before (the page then says so).
"""
from __future__ import annotations

from pathlib import Path

from factlocate.io import file_digest, read_json
from factlocate.paper.context import Context, q
from factlocate.paper.settings import ReportSettings

FOLDER = "training"


def overrides(s: ReportSettings, name: str, out: Path) -> dict:
    """An editor's hyperparameter overrides on the page: the settings', plus the page's checkpoint for a variant
    the page trains."""
    extra = {"checkpoint": str(out / FOLDER / name)} if name in s.train else {}
    return {**s.overrides.get(name, {}), **extra}


def _split(variant: str, data: str) -> tuple[str, str]:
    """(base editor, data kind): "mend-cf", "cf:PATH" -> ("mend", "cf")."""
    return variant.split("-")[0], data.partition(":")[0]


def params(s: ReportSettings) -> dict:
    return dict(model=s.model, train=dict(s.train), overrides={k: s.overrides.get(k, {}) for k in s.train})


def compute(ctx: Context) -> None:
    from factlocate import editors
    from factlocate.identity import identity

    s = ctx.settings
    for variant, data in s.train.items():
        base, kind = _split(variant, data)
        editor = editors.get(base)
        hp = editor.load_hparams(identity(ctx.model).spec, {**s.overrides.get(variant, {}), "data": kind})
        editor.train(ctx.model, hp, data, ctx.folder(FOLDER) / variant, progress=ctx.progress)


def render(ctx: Context) -> list:
    s = ctx.settings
    if not s.train:
        return ["No editor is trained on this page: MEND and KE read the checkpoints in the cache "
                "(`factlocate train-editor`), whose data and time are not counted here."]
    rows = ["| variant | data | training / validation examples | dropped (shared text with test) | steps | "
            "seconds | best validation loss | checkpoint sha256 |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for variant, data in s.train.items():
        folder = ctx.folder(FOLDER) / variant
        if not (folder / "log.json").exists():
            rows.append(f"| {variant} | `{data}` | | | | | | not trained yet |")
            continue
        log = read_json(folder / "log.json")
        rows.append(f"| {variant} | `{data}` | {log['n_train']} / {log['n_val']} | {log['dropped_evaluated']} | "
                    f"{log['log']['step']} | {log['log']['seconds']:,.0f} | {log['log']['best_val']:.4f} | "
                    f"`{file_digest(folder / 'best.safetensors')}` |")
    return ["Trained here; the tables and Figure 6 edit with these checkpoints.", "\n".join(rows)]


def command(s: ReportSettings, out: Path) -> str:
    if not s.train:
        return "(nothing to train: no `train` entries in the settings)"
    return " && ".join(f"factlocate train-editor --editor {_split(v, d)[0]} --model {s.model} --data {q(d)} "
                       f"--out {out}/{FOLDER}/{v}" for v, d in s.train.items())
