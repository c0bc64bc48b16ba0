"""Atomic file writes and JSON helpers: an interrupted run never leaves half a file."""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from factlocate.errors import FactlocateError


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; move it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_out_dir(path: str | Path) -> Path:
    """Fail now, with a one-line error, if `path` cannot become a folder to write results in (before any work)."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise FactlocateError(f"cannot write results under {path}: {probe} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK):
        raise FactlocateError(f"cannot write results under {path}: {probe} is not writable")
    return path


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


def to_jsonable(obj):
    """Tensors, arrays and numpy scalars to plain Python for json.dump."""
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, obj) -> Path:
    return write_text(path, json.dumps(to_jsonable(obj), indent=1, ensure_ascii=False))


def read_json(path: str | Path):
    from factlocate.errors import FactlocateError

    path = Path(path)
    if not path.exists():
        raise FactlocateError(f"file {path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FactlocateError(f"{path} is not valid JSON: {e}") from e


def marked_block(text: str, begin: str, end: str) -> tuple[int, int]:
    """(start, stop) of the block from the line `begin` to `end` inclusive in `text` (a generated part of a doc)."""
    from factlocate.errors import FactlocateError

    if begin not in text or end not in text:
        raise FactlocateError(f"no generated block between {begin!r} and {end!r}")
    return text.index(begin), text.index(end) + len(end)


def replace_block(path: str | Path, begin: str, end: str, block: str) -> Path:
    """Rewrite the marked block of the file at `path` with `block` (which carries its own markers)."""
    text = Path(path).read_text(encoding="utf-8")
    start, stop = marked_block(text, begin, end)
    return write_text(path, text[:start] + block + text[stop:])


def file_digest(path: str | Path | None) -> str:
    """The first 16 hex digits of a file's SHA-256, the digest every record of a file uses; "n/a" for no file."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path and Path(path).is_file() else "n/a"
