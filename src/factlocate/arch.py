"""Architecture facts: the one place that knows how each model family is laid out.

Everything else in factlocate asks this module for hook names, the number of
layers, where the MLP output matrix lives and how it is oriented, where the
attention Q/K/V weights are, and whether a BOS token is prepended.

Weights are named by their Hugging Face parameter names (as in the model's
`state_dict` on the hub); `hf_parameter` resolves such a name on the hooked
model, so a delta lands exactly on the HF matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float

from factlocate.errors import FactlocateError


@dataclass(frozen=True)
class ArchSpec:
    """How one family of HF causal LMs is laid out."""

    name: str
    mlp_out: str  # HF name of the MLP output matrix of layer {l}
    mlp_out_transposed: bool  # True if HF stores it [d_model, d_mlp] (nn.Linear)
    mlp_out_bias: str | None
    attn_qkv: tuple[str, ...]  # HF names of the Q/K/V weights (and biases) of layer {l}
    block: str  # HF name prefix of block {l}
    prepend_bos: bool


ARCHS: dict[str, ArchSpec] = {
    "GPT2LMHeadModel": ArchSpec(
        name="gpt2",
        mlp_out="transformer.h.{l}.mlp.c_proj.weight",
        mlp_out_transposed=False,  # Conv1D stores [d_mlp, d_model]
        mlp_out_bias="transformer.h.{l}.mlp.c_proj.bias",
        attn_qkv=("transformer.h.{l}.attn.c_attn.weight", "transformer.h.{l}.attn.c_attn.bias"),
        block="transformer.h.{l}",
        prepend_bos=False,  # as in the paper
    ),
    "GPTJForCausalLM": ArchSpec(
        name="gptj",
        mlp_out="transformer.h.{l}.mlp.fc_out.weight",
        mlp_out_transposed=True,
        mlp_out_bias="transformer.h.{l}.mlp.fc_out.bias",
        attn_qkv=(
            "transformer.h.{l}.attn.q_proj.weight",
            "transformer.h.{l}.attn.k_proj.weight",
            "transformer.h.{l}.attn.v_proj.weight",
        ),
        block="transformer.h.{l}",
        prepend_bos=False,
    ),
    "LlamaForCausalLM": ArchSpec(
        name="llama",
        mlp_out="model.layers.{l}.mlp.down_proj.weight",
        mlp_out_transposed=True,
        mlp_out_bias=None,
        attn_qkv=(
            "model.layers.{l}.self_attn.q_proj.weight",
            "model.layers.{l}.self_attn.k_proj.weight",
            "model.layers.{l}.self_attn.v_proj.weight",
        ),
        block="model.layers.{l}",
        prepend_bos=False,  # SmolLM2's tokenizer adds none
    ),
    "Gemma3ForCausalLM": ArchSpec(
        name="gemma3",
        mlp_out="model.layers.{l}.mlp.down_proj.weight",
        mlp_out_transposed=True,
        mlp_out_bias=None,
        attn_qkv=(
            "model.layers.{l}.self_attn.q_proj.weight",
            "model.layers.{l}.self_attn.k_proj.weight",
            "model.layers.{l}.self_attn.v_proj.weight",
        ),
        block="model.layers.{l}",
        prepend_bos=True,  # Gemma expects <bos>
    ),
}
ARCHS["MistralForCausalLM"] = ARCHS["LlamaForCausalLM"]
ARCHS["Qwen2ForCausalLM"] = ARCHS["LlamaForCausalLM"]


# Hook names on the bridge (TransformerLens canonical names).
HOOK_EMBED = "hook_embed"


def hook_resid(layer: int) -> str:
    """The residual stream after block `layer`."""
    return f"blocks.{layer}.hook_resid_post"


def hook_mlp_out(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_out"


def hook_attn_out(layer: int) -> str:
    return f"blocks.{layer}.hook_attn_out"


def hook_mlp_key(layer: int) -> str:
    """The input to the MLP output matrix (ROME's key): act(W_in x), or act(gate)*up."""
    return f"blocks.{layer}.mlp.hook_post"


def hook_mlp_value(layer: int) -> str:
    """The output of the MLP output matrix (ROME's value), before any post-norm."""
    return f"blocks.{layer}.mlp.hook_out"


def hook_for_kind(kind: str, layer: int) -> str:
    """Hook restored by causal tracing for a site kind: hidden, mlp or attn."""
    if kind == "hidden":
        return hook_resid(layer)
    if kind == "mlp":
        return hook_mlp_out(layer)
    if kind == "attn":
        return hook_attn_out(layer)
    raise FactlocateError(f"unknown site kind {kind!r}: use hidden, mlp or attn")


def hf_model(model) -> torch.nn.Module:
    """The Hugging Face model inside a bridge (or the model itself)."""
    return getattr(model, "original_model", model)


def spec(model) -> ArchSpec:
    """The ArchSpec of a bridge or HF model."""
    archs = getattr(hf_model(model).config, "architectures", None) or []
    for a in archs:
        if a in ARCHS:
            return ARCHS[a]
    raise FactlocateError(
        f"architecture {archs} is not supported for editing yet; supported: {sorted(ARCHS)}"
    )


def n_layers(model) -> int:
    return int(model.cfg.n_layers)


def check_layer(model, layer: int) -> int:
    n = n_layers(model)
    if not isinstance(layer, int) or not 0 <= layer < n:
        raise FactlocateError(f"layer {layer} is out of range: this model has layers 0..{n - 1}")
    return layer


def hf_parameter(model, name: str) -> torch.nn.Parameter:
    """Resolve a Hugging Face parameter name on a bridge (or HF model)."""
    try:
        return hf_model(model).get_parameter(name)
    except AttributeError as e:
        raise FactlocateError(f"the model has no parameter {name!r}") from e


def mlp_out_name(model, layer: int) -> str:
    return spec(model).mlp_out.format(l=check_layer(model, layer))


def mlp_out_weight(model, layer: int) -> Float[torch.Tensor, "d_mlp d_model"]:
    """The MLP output matrix of `layer` as a [d_mlp, d_model] view of the live weight."""
    w = hf_parameter(model, mlp_out_name(model, layer))
    return w.T if spec(model).mlp_out_transposed else w


def to_storage(model, delta: Float[torch.Tensor, "d_mlp d_model"]) -> torch.Tensor:
    """Turn a [d_mlp, d_model] update into the HF storage orientation of the MLP output matrix."""
    return delta.T.contiguous() if spec(model).mlp_out_transposed else delta


def attn_qkv_names(model, layer: int) -> list[str]:
    return [n.format(l=check_layer(model, layer)) for n in spec(model).attn_qkv]


def block_param_names(model, layer: int) -> list[str]:
    """HF names of every parameter of block `layer`."""
    prefix = spec(model).block.format(l=check_layer(model, layer)) + "."
    return [n for n, _ in hf_named_parameters(model) if n.startswith(prefix)]


def hf_parameter_names(model) -> list[str]:
    """The model's parameter names as its HF class defines them (built on the meta device)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        reference = AutoModelForCausalLM.from_config(hf_model(model).config)
    return [n for n, _ in reference.named_parameters()]


def hf_named_parameters(model):
    """(HF name, live parameter) pairs, without the bridge's wrapper names or views."""
    for name in hf_parameter_names(model):
        yield name, hf_parameter(model, name)


def prepend_bos(model) -> bool:
    return spec_or_default(model).prepend_bos


def spec_or_default(model) -> ArchSpec:
    """Like `spec`, but unsupported-for-editing models still trace (no BOS unless the tokenizer adds one)."""
    try:
        return spec(model)
    except FactlocateError:
        return ArchSpec("other", "", False, None, (), "", prepend_bos=False)
