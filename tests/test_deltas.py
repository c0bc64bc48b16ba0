"""Weight deltas: apply changes logits, revert is bit-identical, save/load and export round-trip."""
import torch

from factlocate import arch, deltas, tokens
from factlocate.deltas import WeightDelta

PROMPT = "The Eiffel Tower is located in"


def _logits(model):
    with torch.no_grad():
        return model(tokens.to_tensor(model, tokens.encode(model, PROMPT)))


def _mlp_delta(model, layer=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(model.cfg.d_mlp, 1, generator=g)
    v = torch.randn(1, model.cfg.d_model, generator=g)
    return WeightDelta(arch.mlp_out_name(model, layer), arch.to_storage(model, u @ v, layer))


def test_apply_changes_logits_and_revert_is_exact(tiny_model):
    before = {n: p.detach().clone() for n, p in arch.hf_named_parameters(tiny_model)}
    base = _logits(tiny_model)
    d = _mlp_delta(tiny_model)
    with deltas.applied(tiny_model, [d]):
        assert (_logits(tiny_model) - base).abs().max() > 1e-3
    after = dict(arch.hf_named_parameters(tiny_model))
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert torch.equal(_logits(tiny_model), base)


def test_save_load_roundtrip(tiny_gpt2, tmp_path):
    d = _mlp_delta(tiny_gpt2)
    path = deltas.save([d], tmp_path / "d.safetensors", {"editor": "test"})
    loaded, meta = deltas.load(path)
    assert meta == {"editor": "test"}
    assert loaded[0].name == d.name and torch.equal(loaded[0].delta, d.delta)


def test_export_reloads_with_same_logits(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    d = _mlp_delta(tiny_model)
    with deltas.applied(tiny_model, [d]):
        edited = _logits(tiny_model)
        deltas.export(tiny_model, tmp_path / "edited")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "edited", attn_implementation="eager").eval()
    ids = tokens.to_tensor(tiny_model, tokens.encode(tiny_model, PROMPT))
    with torch.no_grad():
        assert (hf(ids).logits - edited).abs().max().item() < 1e-4
