"""Every editor's deltas on tiny models, compared bit for bit with deltas recorded from an earlier version.

The recording (tests/data/golden_deltas.json: per delta its SHA-256, shape, norm and
sum) was made before the editors were rebuilt on the shared forward-control and capture
primitives; a refactor that changes any editor's arithmetic shows up here. Under other
library versions than the recording's (`make test-latest`), kernels may round
differently, so the comparison there is of norm and sum within float tolerance.

    FACTLOCATE_RECORD_GOLDEN=1 pytest tests/test_golden_deltas.py   # re-record (only on purpose)
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
import transformers

from factlocate import editors
from factlocate.editors.base import EditRequest

GOLDEN = Path(__file__).parent / "data" / "golden_deltas.json"
# Editors whose arithmetic has since been reordered on purpose, compared within float tolerance:
# MEMIT now reads every request's keys in shared padded forward passes (the batching that sequential
# editing needs), which changes how the products are blocked but not what they compute.
REORDERED = {"memit"}
# Adam scales each gradient to about one learning rate whatever its size, so for the editors that fine-tune with
# Adam the last-bit differences between CPU kinds' matrix kernels flip the steps of near-zero gradients: across
# CPU kinds their deltas agree in norm to a few percent (2% seen on AttnEdit), not in bits.
LOOSE = {"attn-edit": 0.05, "ft-l": 0.05, "ft-w": 0.05, "ft": 0.05}
TEMPLATES = ["{}", "The city. {}", "In the news today. {}"]
REQUESTS = [
    EditRequest("{} is located in the city of", "The Eiffel Tower", "Rome", target_true="Paris"),
    EditRequest("{} plays the sport of", "LeBron James", "football", target_true="basketball"),
]
ARCHS = ("gpt2", "llama")


def _cases(model):
    d_mlp = int(model.cfg.d_mlp)
    eye = torch.eye(d_mlp, dtype=torch.float64)
    return {
        "rome": (dict(layer=1, v_num_grad_steps=6), dict(stats=eye, templates=TEMPLATES)),
        "memit": (dict(layers=[1, 2], v_num_grad_steps=6, mom2_adjustment=False, batch_targets=False),
                  dict(templates=TEMPLATES)),
        "ft": (dict(layer=1, num_steps=3), {}),
        "ft-l": (dict(layer=0, num_steps=3), {}),
        "ft-w": (dict(layer=1, num_steps=3), {}),
        "attn-edit": (dict(layer=1, num_steps=3), {}),
        "kn": (dict(steps=4, batch_size=4), {}),
    }


def _deltas(model) -> dict[str, torch.Tensor]:
    out = {}
    for name, (hp, options) in _cases(model).items():
        module = editors.get(name)
        result = module.compute_edit(model, REQUESTS, module.HParams(**hp), progress=False, **options)
        for d in result.deltas:
            out[f"{name}|{d.name}"] = d.delta.detach().cpu().contiguous()
    return out


def _summary(t: torch.Tensor) -> dict:
    t = t.float().contiguous()
    return {"sha256": hashlib.sha256(t.numpy().tobytes()).hexdigest(), "shape": list(t.shape),
            "norm": float(t.double().norm()), "sum": float(t.double().sum())}


def _versions() -> dict:
    return {"torch": torch.__version__, "transformers": transformers.__version__}


def _machine() -> str:
    """The CPU kind: matrix kernels differ in their last bits between kinds, so bits are compared on one kind."""
    import platform

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return f"{platform.machine()} {name or platform.processor()} avx512f={'avx512f' in flags}"


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("arch", ARCHS)
def test_every_editor_gives_the_recorded_deltas(tiny_dirs, arch):
    from factlocate import load_model

    model = load_model(tiny_dirs[arch])
    got = {f"{arch}|{k}": _summary(v) for k, v in _deltas(model).items()}
    record = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {"versions": _versions(), "deltas": {}}
    if os.environ.get("FACTLOCATE_RECORD_GOLDEN") == "1":
        kept = {k: v for k, v in record["deltas"].items() if not k.startswith(f"{arch}|")}
        GOLDEN.write_text(json.dumps({"versions": _versions(), "machine": _machine(), "deltas": {**kept, **got}},
                                      indent=1, sort_keys=True))
        pytest.skip("recorded")
    want = {k: v for k, v in record["deltas"].items() if k.startswith(f"{arch}|")}
    assert sorted(got) == sorted(want)
    exact = record["versions"] == _versions() and record.get("machine") == _machine()
    for key, w in want.items():
        g = got[key]
        assert g["shape"] == w["shape"], key
        editor = key.split("|")[1]
        if exact and editor not in REORDERED:
            assert g["sha256"] == w["sha256"], key
        elif editor in LOOSE:
            assert g["norm"] == pytest.approx(w["norm"], rel=LOOSE[editor]), key
        else:
            assert g["norm"] == pytest.approx(w["norm"], rel=1e-4, abs=1e-6), key
            assert g["sum"] == pytest.approx(w["sum"], rel=1e-3, abs=1e-4 * max(1.0, w["norm"])), key
