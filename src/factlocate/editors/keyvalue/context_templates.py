"""Context templates: short texts the model writes itself, used as prefixes of the edit prompt.

ROME averages the key over "{}" plus 10 texts of 5 tokens and 10 of 10 tokens
(`lengths=((5, 10), (10, 10))`), each sampled top-k=5 from BOS (GPT-2's
<|endoftext|>) with its braces removed and ". {}" appended. MEMIT uses
`((10, 5),)`. Sampling is seeded, and the templates are cached per model, seed
and lengths under `<cache>/templates/`.
"""
from __future__ import annotations

from factlocate.errors import FactlocateError
from factlocate.generate import generate
from factlocate.identity import check_unedited, identity
from factlocate.io import read_json, write_json
from factlocate.models import cache_dir

ROME_LENGTHS = ((5, 10), (10, 10))


def check(templates: list[str]) -> list[str]:
    """Templates must each hold exactly one "{}"."""
    if not templates:
        raise FactlocateError("no context templates given")
    for t in templates:
        if t.count("{}") != 1:
            raise FactlocateError(f"context template {t!r} must contain exactly one '{{}}'")
    return list(templates)


def generate_templates(model, lengths=ROME_LENGTHS, seed: int = 0) -> list[str]:
    """["{}"] + model-generated prefixes, as in ROME's `get_context_templates`."""
    out = ["{}"]
    for i, (length, n) in enumerate(lengths):
        texts = generate(model, [""], max_length=length, top_k=5, seed=seed + i, n_per_prompt=n, bos=True)
        out += [t.replace("{", "").replace("}", "") + ". {}" for t in texts]
    return out


def context_templates(model, lengths=ROME_LENGTHS, seed: int = 0, cache: bool = True) -> list[str]:
    """Cached `generate_templates` (one JSON file per model, lengths and seed)."""
    lengths = tuple(tuple(int(x) for x in pair) for pair in lengths)
    tag = "_".join(f"{a}x{b}" for a, b in lengths)
    path = cache_dir() / "templates" / f"{identity(model).key}_{tag}_seed{seed}.json"
    if cache and path.exists():
        data = read_json(path)
        if data.get("lengths") == [list(p) for p in lengths] and data.get("seed") == seed:
            return check(data["templates"])
    if cache:
        check_unedited(model, "context templates")
    templates = generate_templates(model, lengths, seed)
    if cache:
        write_json(path, {"model": identity(model).spec, "lengths": lengths, "seed": seed, "templates": templates})
    return templates


def load_templates(path) -> list[str]:
    """Templates from a JSON file holding a list of strings (or {"templates": [...]})."""
    data = read_json(path)
    if isinstance(data, dict):
        data = data.get("templates")
    if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
        raise FactlocateError(f"{path} must hold a JSON list of template strings")
    return check(data)

