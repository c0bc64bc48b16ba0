"""Shared fixtures: tiny random models of each architecture, and the embedded models.

Tiny models are built locally (random weights, a BPE tokenizer trained on the
known facts), so they need no network. The embedded GGUF models load once per
session (about a minute each).
"""
from __future__ import annotations

import os

import pytest
import torch

from factlocate.tiny import ARCHITECTURES, build_tiny_model

torch.set_num_threads(max(1, os.cpu_count() or 1))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep test caches (templates, statistics) out of the user's cache; reuse assembled GGUFs."""
    os.environ.setdefault("FACTLOCATE_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run much faster on one thread, especially on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny")
    return {a: str(build_tiny_model(a, root / a)) for a in ARCHITECTURES}


@pytest.fixture(scope="session", params=ARCHITECTURES)
def tiny_model(request, tiny_dirs):
    """One tiny bridge per architecture (shared across the session: restore what you change)."""
    from factlocate import load_model

    return load_model(tiny_dirs[request.param])


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_dirs):
    from factlocate import load_model

    return load_model(tiny_dirs["gpt2"])


@pytest.fixture(scope="session")
def gemma():
    from factlocate import load_model

    return load_model("gemma-3-270m")


@pytest.fixture(scope="session")
def smollm():
    from factlocate import load_model

    return load_model("smollm2-135m")
