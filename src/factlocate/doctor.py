"""`factlocate doctor`: what a bug report needs, in one paste.

It prints the versions of the libraries factlocate depends on, whether they
match the lock file the project was tested with, the device and thread count,
and the result of the key/value-reuse self-checks on a tiny random model,
together with a batched trace compared against the naive engine.
"""
from __future__ import annotations

import os
import platform
import re
import tempfile
from importlib import metadata
from pathlib import Path

import torch

LOCK_NAME = "requirements.lock"
KEY_PACKAGES = ("torch", "transformers", "transformer-lens", "factlocate")


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def find_lock() -> Path | None:
    """The lock file of a source checkout (the current folder or the one factlocate was installed from)."""
    for folder in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (folder / LOCK_NAME).is_file():
            return folder / LOCK_NAME
    return None


def read_lock(path: Path) -> dict[str, str]:
    """{normalised name: version} of the `name==version` lines of a lock file."""
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if m:
            pins[normalise(m.group(1))] = m.group(2)
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_report(path: Path | None) -> list[str]:
    if path is None:
        return ["lock: no requirements.lock found (not a source checkout); versions not compared"]
    pins = read_lock(path)
    differ = []
    for name, want in sorted(pins.items()):
        got = installed(name)
        if got is None or got.split("+")[0] != want.split("+")[0]:
            differ.append(f"{name} {got or 'missing'} (lock {want})")
    if not differ:
        return [f"lock: all {len(pins)} packages match {path}"]
    return [f"lock: {len(differ)} of {len(pins)} packages differ from {path}:"] + [f"  {d}" for d in differ[:20]]


def device_report() -> list[str]:
    accelerator = torch.accelerator.current_accelerator()
    return [f"device: {accelerator or 'cpu'} (accelerator available: {accelerator is not None})",
            f"threads: torch {torch.get_num_threads()}, cpus {os.cpu_count()}"]


def self_check() -> list[str]:
    """Load a tiny random GPT-2 and run every reuse check, the decoding head's, and batched-vs-naive tracing."""
    import numpy as np

    from factlocate import load_model, scoring
    from factlocate.generate import cached_decoding_verified, head_logits_verified
    from factlocate.identity import state
    from factlocate.tiny import build_tiny_model
    from factlocate.tracing import batched, trace

    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(str(build_tiny_model("gpt2", Path(tmp) / "tiny")), device="cpu")
    batched.reuse_verified(model)
    scoring.shared_prompt_nll(model, ["The capital of"], [["Paris", "Rome"]])
    cached_decoding_verified(model)
    head_logits_verified(model)
    checks = state(model).checks
    lines = []
    for name in ("batched tracing", "shared-prompt scoring", "cached generation"):
        ok = checks.get(name, False)
        verdict = "KV reuse matches full forwards" if ok else "KV reuse OFF (full forwards, exact and slower)"
        lines.append(f"self-check ({name}): {verdict}")
    head = "matches the model's own head" if checks.get("decoding head") else "OFF (the model's own head, slower)"
    lines.append(f"self-check (decoding head, W @ h^T): {head}")
    prompt, subject = "The capital of Roman Republic is", "Roman Republic"
    fast = trace(model, prompt, subject, kind="mlp", window=2, samples=2, noise=0.5)
    slow = trace(model, prompt, subject, kind="mlp", window=2, samples=2, noise=0.5, engine="naive")
    diff = float(np.abs(fast.scores - slow.scores).max())
    lines.append(f"self-check (batched = naive trace on a tiny GPT-2): max |diff| {diff:.1e} "
                 f"({'ok' if diff < 1e-5 else 'MISMATCH'})")
    return lines


def report(check: bool = True) -> list[str]:
    lines = [f"python: {platform.python_version()} on {platform.platform()}"]
    lines += [f"{name}: {installed(name) or 'not installed'}" for name in KEY_PACKAGES]
    lines += lock_report(find_lock())
    lines += device_report()
    if check:
        lines += self_check()
    return lines
