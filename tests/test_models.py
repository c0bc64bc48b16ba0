"""Loading: bridge logits equal HF logits; embedded models know facts; clear errors."""
import json
import subprocess
import sys

import pytest
import torch

from factlocate import FactlocateError, arch, load_model, tokens
from factlocate.cli import main

PARIS = "The Eiffel Tower is located in the city of"


def test_bridge_matches_hf_logits(tiny_model, tiny_dirs):
    from transformers import AutoModelForCausalLM

    folder = arch.hf_model(tiny_model).config.name_or_path
    hf = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    ids = tokens.to_tensor(tiny_model, tokens.encode(tiny_model, PARIS))
    with torch.no_grad():
        diff = (tiny_model(ids) - hf(ids).logits).abs().max().item()
    assert diff < 1e-4


def test_arch_facts(tiny_model):
    w = arch.mlp_out_weight(tiny_model, 1)
    assert w.shape == (tiny_model.cfg.d_mlp, tiny_model.cfg.d_model)
    assert arch.n_layers(tiny_model) == 4
    ids = tokens.encode(tiny_model, "Paris")
    assert (ids[0] == tiny_model.tokenizer.bos_token_id) == arch.prepend_bos(tiny_model)
    assert arch.prepend_bos(tiny_model) == (arch.family(tiny_model) == "gemma3_text")  # only Gemma starts with BOS
    for name in arch.attn_qkv_names(tiny_model, 1):
        arch.hf_parameter(tiny_model, name)
    _, cache = tiny_model.run_with_cache(tokens.to_tensor(tiny_model, ids))
    for hook in [arch.HOOK_EMBED, arch.hook_resid(1), arch.hook_mlp_out(1),
                 arch.hook_attn_out(1), arch.hook_mlp_key(1), arch.hook_mlp_value(1)]:
        assert hook in cache


def test_mlp_key_value_is_the_mlp_output_matrix(tiny_model):
    """value = key @ W (+ bias): the matrix ROME edits maps the hooked key to the hooked value."""
    ids = tokens.to_tensor(tiny_model, tokens.encode(tiny_model, PARIS))
    _, cache = tiny_model.run_with_cache(ids)
    k, v = cache[arch.hook_mlp_key(2)], cache[arch.hook_mlp_value(2)]
    pred = k @ arch.mlp_out_weight(tiny_model, 2)
    bias = arch.mlp_out_bias_name(tiny_model, 2)
    if bias:
        pred = pred + arch.hf_parameter(tiny_model, bias)
    assert torch.allclose(pred, v, atol=1e-4)


def test_subject_range(tiny_gpt2):
    start, end = tokens.subject_range(tiny_gpt2, PARIS, "The Eiffel Tower")
    ids = tokens.encode(tiny_gpt2, PARIS)
    assert start == 0 and tiny_gpt2.tokenizer.decode(ids[start:end]) == "The Eiffel Tower"
    with pytest.raises(FactlocateError, match="does not occur"):
        tokens.subject_range(tiny_gpt2, PARIS, "Big Ben")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("gpt3", "unknown model"),
        ("./no/such/folder", "does not exist"),
        ("someone/not-cached-model", "not in the local cache and the hub is unreachable"),
    ],
)
def test_load_errors(spec, message, monkeypatch):
    monkeypatch.setattr("factlocate.net.reachable", lambda url, timeout=3.0: False)
    with pytest.raises(FactlocateError, match=message):
        load_model(spec)


def test_folder_that_is_not_a_model(tmp_path, capsys):
    assert main(["predict", "--model", str(tmp_path), "--prompt", "x"]) == 2
    err = capsys.readouterr().err
    assert "not a model folder" in err and "Traceback" not in err


def test_cli_models_lists_embedded(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "gemma-3-270m" in out and "smollm2-135m" in out and "gpt2-xl" in out


@pytest.mark.embedded
@pytest.mark.parametrize("name", ["gemma-3-270m", "smollm2-135m"])
def test_embedded_model_predicts_paris_cli(name):
    proc = subprocess.run(
        [sys.executable, "-m", "factlocate.cli", "predict", "--model", name, "--prompt", PARIS, "--json"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["model"] == name and result["top"][0]["token"] == " Paris"


@pytest.mark.embedded
def test_embedded_bridge_matches_hf(smollm):
    """A plain transformers model holding the same (dequantised) weights gives the same logits."""
    from transformers import AutoModelForCausalLM

    hf = arch.hf_model(smollm)
    plain = AutoModelForCausalLM.from_config(hf.config, attn_implementation="eager")
    plain.load_state_dict(dict(arch.hf_named_parameters(smollm)), strict=False)
    plain.tie_weights()
    ids = tokens.to_tensor(smollm, tokens.encode(smollm, PARIS))
    with torch.no_grad():
        assert (smollm(ids) - plain.eval()(ids).logits).abs().max().item() < 1e-4
