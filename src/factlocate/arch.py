"""Architecture facts: hook names, and where each Hugging Face weight lives, read off the bridge.

Hook names are TransformerLens's canonical names on the bridge (`blocks.L.hook_resid_post`,
`blocks.L.mlp.hook_post`, ...); this module is the only place that spells them.

Weights are named by their Hugging Face parameter names (as in the model's
`state_dict` on the hub), so a delta lands exactly on the HF matrix. Nothing here
is a hand-kept table per architecture: the bridge's adapter already maps each
TransformerLens component (`blocks.L.mlp.out`, `blocks.L.attn.q`, ...) to the HF
module it wraps, and `component_param` finds that module's weight among the HF
parameters. Whether the HF matrix is stored [out, in] (`nn.Linear`) or [in, out]
(GPT-2's `Conv1D`) is read off the module's type.

The one fact the bridge does not hold is kept as data per HF model type:
`BOS_MODEL_TYPES`, the families whose prompts start with BOS (Gemma expects
`<bos>`; GPT-2, GPT-J and Llama-architecture models such as SmolLM2 run without,
as in the paper). It is not read off the tokenizer, because whether a tokenizer
adds BOS by default changes with how transformers loads it.
"""
from __future__ import annotations

import torch
from jaxtyping import Float

from factlocate.errors import FactlocateError

HOOK_EMBED = "hook_embed"  # token embeddings, before position embeddings

# HF model types whose prompts start with BOS.
BOS_MODEL_TYPES = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text"})


def hook_resid(layer: int) -> str:
    """The residual stream after block `layer`."""
    return f"blocks.{layer}.hook_resid_post"


def hook_resid_pre(layer: int) -> str:
    """The residual stream entering block `layer`."""
    return f"blocks.{layer}.hook_resid_pre"


def hook_resid_in(model, layer: int) -> str:
    """The residual entering block `layer`; `layer == n_layers` is the last block's output."""
    n = n_layers(model)
    return hook_resid_pre(layer) if layer < n else hook_resid(n - 1)


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


# ---------------------------------------------------------------- the model and its layers


def hf_model(model) -> torch.nn.Module:
    """The Hugging Face model inside a bridge (or the model itself)."""
    return getattr(model, "original_model", model)


def family(model) -> str:
    """The HF model type ('gpt2', 'gptj', 'llama', 'gemma3_text', ...)."""
    return str(getattr(hf_model(model).config, "model_type", type(hf_model(model)).__name__))


def n_layers(model) -> int:
    return int(model.cfg.n_layers)


def check_layer(model, layer: int) -> int:
    n = n_layers(model)
    if not isinstance(layer, int) or not 0 <= layer < n:
        raise FactlocateError(f"layer {layer} is out of range: this model has layers 0..{n - 1}")
    return layer


def prepend_bos(model) -> bool:
    """Whether prompts start with BOS (see `BOS_MODEL_TYPES`)."""
    return family(model) in BOS_MODEL_TYPES and model.tokenizer.bos_token_id is not None


# ---------------------------------------------------------------- HF parameters


def hf_parameter(model, name: str) -> torch.nn.Parameter:
    """Resolve a Hugging Face parameter name on a bridge (or HF model)."""
    try:
        return hf_model(model).get_parameter(name)
    except AttributeError as e:
        raise FactlocateError(f"the model has no parameter {name!r}") from e


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


def _names_by_id(model) -> dict[int, str]:
    from factlocate.identity import state

    st = state(model)
    if st.parameter_names is None:
        st.parameter_names = {id(p): n for n, p in hf_named_parameters(model)}
    return st.parameter_names


def component(model, layer: int, path: str) -> torch.nn.Module:
    """The HF module that bridge component `blocks.<layer>.<path>` wraps (e.g. path 'mlp.out')."""
    node = model.blocks[check_layer(model, layer)]
    for part in path.split("."):
        node = getattr(node, part, None)
        if node is None:
            raise FactlocateError(f"this model's bridge has no component blocks.{layer}.{path}")
    return getattr(node, "original_component", node)


def component_param(model, layer: int, path: str, which: str = "weight") -> str | None:
    """HF name of the `which` parameter of component `blocks.<layer>.<path>` (None if it has none)."""
    p = getattr(component(model, layer, path), which, None)
    if p is None:
        return None
    name = _names_by_id(model).get(id(p))
    if name is None:
        raise FactlocateError(f"blocks.{layer}.{path}.{which} is not one of the model's HF parameters")
    return name


def has_component(model, layer: int, path: str) -> bool:
    try:
        component(model, layer, path)
        return True
    except FactlocateError:
        return False


def mlp_post_norm(model, layer: int) -> torch.nn.Module | None:
    """The norm between the MLP's output matrix and the residual (Gemma's post-feedforward norm), or None."""
    return component(model, layer, "ln2_post") if has_component(model, layer, "ln2_post") else None


def stored_transposed(model, layer: int, path: str) -> bool:
    """True if the HF matrix is stored [out, in] (nn.Linear), False for [in, out] (GPT-2's Conv1D)."""
    return isinstance(component(model, layer, path), torch.nn.Linear)


def mlp_out_name(model, layer: int) -> str:
    return component_param(model, layer, "mlp.out")


def mlp_out_bias_name(model, layer: int) -> str | None:
    return component_param(model, layer, "mlp.out", "bias")


def mlp_out_weight(model, layer: int) -> Float[torch.Tensor, "d_mlp d_model"]:
    """The MLP output matrix of `layer` as a [d_mlp, d_model] view of the live weight."""
    w = hf_parameter(model, mlp_out_name(model, layer))
    return w.T if stored_transposed(model, layer, "mlp.out") else w


def to_storage(model, delta: Float[torch.Tensor, "d_mlp d_model"], layer: int) -> torch.Tensor:
    """Turn a [d_mlp, d_model] update into the HF storage orientation of layer `layer`'s MLP output matrix."""
    return delta.T.contiguous() if stored_transposed(model, layer, "mlp.out") else delta


def mlp_in_paths(model, layer: int) -> list[str]:
    """Bridge paths of the MLP input matrices: 'mlp.in', plus 'mlp.gate' for gated MLPs."""
    return ["mlp.in"] + (["mlp.gate"] if has_component(model, layer, "mlp.gate") else [])


def attn_qkv_names(model, layer: int) -> list[str]:
    """HF names of the Q, K and V weights (and biases, where there are any) of `layer`."""
    paths = ["attn.qkv"] if has_component(model, layer, "attn.qkv") else ["attn.q", "attn.k", "attn.v"]
    names = [component_param(model, layer, p) for p in paths]
    names += [component_param(model, layer, p, "bias") for p in paths]
    return [n for n in names if n is not None]


def block_param_names(model, layer: int) -> list[str]:
    """HF names of every parameter of block `layer`, in the model's order."""
    block = model.blocks[check_layer(model, layer)]
    inside = {id(p) for p in getattr(block, "original_component", block).parameters()}
    return [n for n, p in hf_named_parameters(model) if id(p) in inside]
