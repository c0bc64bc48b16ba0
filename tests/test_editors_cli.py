"""`factlocate edit --editor ...` with the baselines and MEMIT, on a tiny model."""
from __future__ import annotations

import json

from factlocate.cli import main


def test_cli_ft_and_errors(tiny_dirs, tmp_path, capsys):
    base = ["edit", "--model", tiny_dirs["gpt2"], "--prompt", "{} is located in", "--subject", "Vinson Massif",
            "--target", "Paris"]
    out = tmp_path / "ft.json"
    assert main(base + ["--editor", "ft", "--layer", "1", "--set", "lr=0.02", "--set", "num_steps=2", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["editor"] == "ft"
    capsys.readouterr()
    assert main(base + ["--editor", "ft-l", "--layer", "0", "--set", "norm_constraint=0"]) == 2
    assert "norm_constraint (eps) must be positive" in capsys.readouterr().err
    assert main(base + ["--editor", "attn-edit", "--layer", "9"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_cli_memit_requests_file(tiny_dirs, tmp_path, capsys):
    requests = [
        {"prompt": "{} is located in", "subject": "Vinson Massif", "target_new": "Paris", "relation_id": "P30"},
        {"prompt": "{} is located in", "subject": "Vinson Massif", "target_new": "Rome", "relation_id": "P30"},
    ]
    path = tmp_path / "requests.json"
    path.write_text(json.dumps(requests))
    args = ["edit", "--editor", "memit", "--model", tiny_dirs["gpt2"], "--requests", str(path), "--layer", "1,2"]
    assert main(args) == 2
    assert "conflicting requests" in capsys.readouterr().err
    path.write_text(json.dumps(requests[:1]))
    assert main(args[:-2] + ["--layer", "2,7"]) == 2
    assert "out of range" in capsys.readouterr().err
    path.write_text("[]")
    assert main(args) == 2
    capsys.readouterr()
