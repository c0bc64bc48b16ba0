"""What a page's numbers were made with: the model's weight fingerprint, the lock file's digest, the factlocate
commit and the digest of every dataset the settings name.

    record(out, model, settings)     # DIR/provenance.json, rewritten by every call that loads the model
    lines(out)                       # the page's provenance lines (from the file; none before a computing call)
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from factlocate.io import file_digest, read_json, write_json

FILE = "provenance.json"


def _commit(repo: Path | None) -> str:
    """HEAD of the source checkout, with "+changes" when tracked files differ from it; "n/a" outside a checkout."""
    if repo is None:
        return "n/a"
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "n/a"
    return head + ("+changes" if dirty else "")


def record(out: Path, model, settings) -> dict:
    from factlocate import datasets
    from factlocate.doctor import find_lock
    from factlocate.errors import FactlocateError
    from factlocate.identity import identity

    lock = find_lock()
    digests = {}
    for spec in dict.fromkeys((settings.counterfact, settings.zsre, settings.sequential_dataset)):
        try:
            digests[spec] = datasets.load(spec, allow_download=False).digest
        except FactlocateError as e:
            digests[spec] = f"n/a ({e})"
    info = {"model": identity(model).key, "lock_sha256": file_digest(lock),
            "commit": _commit(lock.parent if lock is not None else None), "datasets": digests}
    write_json(out / FILE, info)
    return info


def lines(out: Path) -> list[str]:
    path = out / FILE
    if not path.exists():
        return []
    p = read_json(path)
    data = ", ".join(f"{k} `{v}`" for k, v in p["datasets"].items())
    return [f"Made with: model `{p['model']}` (name and weight fingerprint), `requirements.lock` sha256 "
            f"`{p['lock_sha256']}`, factlocate commit `{p['commit']}`; dataset digests: {data}."]
