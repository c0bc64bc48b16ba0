"""`factlocate edit` and `factlocate stats` on a tiny model, and their one-line errors."""
from __future__ import annotations

import json

import pytest

from factlocate.cli import main

FAST = ["--set", "v_num_grad_steps=3", "--set", "stats_tokens=800"]


def test_edit_prints_probs_generations_and_saves(tiny_dirs, tmp_path, capsys):
    d = tiny_dirs["gpt2"]
    rc = main(["edit", "--model", d, "--editor", "rome", "--subject", "The Eiffel Tower",
               "--prompt", "{} is located in the city of", "--target", "Rome", "--target-true", "Paris",
               "--layer", "1", "--generate", "--gen-length", "14", "--seed", "2",
               "--save-deltas", str(tmp_path / "d.safetensors"), "--export", str(tmp_path / "edited"),
               "--out", str(tmp_path / "r.json"), *FAST])
    out = capsys.readouterr().out
    assert rc == 0
    assert "p(new) before" in out and "before:" in out and "after:" in out
    assert (tmp_path / "d.safetensors").exists() and (tmp_path / "edited" / "config.json").exists()
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["hparams"]["layer"] == 1 and summary["hparams"]["v_num_grad_steps"] == 3
    assert len(summary["generations"]) == 1


def test_edit_reads_counterfact_requests(tiny_dirs, tmp_path, capsys):
    reqs = [{"case_id": 7, "requested_rewrite": {"prompt": "{} is located in the city of", "subject": "The Eiffel Tower",
             "target_new": {"str": "Rome"}, "target_true": {"str": "Paris"}, "relation_id": "P131"}},
            {"prompt": "LeBron James plays", "subject": "LeBron James", "target_new": "football"}]
    path = tmp_path / "reqs.json"
    path.write_text(json.dumps(reqs))
    assert main(["edit", "--model", tiny_dirs["llama"], "--requests", str(path), "--layer", "1", *FAST]) == 0
    assert "2 request(s)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--subject", "Paris", "--prompt", "Rome is nice", "--target", "x"], "does not occur"),
    (["--subject", "Paris", "--prompt", "{} is nice", "--target", " "], "empty"),
    (["--subject", "Paris", "--prompt", "{} is nice", "--target", "x", "--layer", "9"], "out of range"),
    (["--subject", "Paris", "--prompt", "{} is nice", "--target", "x", "--set", "v_lr"], "KEY=VALUE"),
    (["--subject", "Paris", "--prompt", "{} is nice", "--target", "x", "--editor", "nope"], "unknown editor"),
    (["--subject", "Paris", "--prompt", "{} is nice"], "--target"),
    (["--subject", "Paris", "--prompt", "{} is nice", "--target", "x"], "--layer"),
])
def test_edit_errors_are_one_line(tiny_dirs, capsys, argv, message):
    rc = main(["edit", "--model", tiny_dirs["gpt2"], *argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("factlocate: error:") and message in err and "Traceback" not in err


def test_stats_command(tiny_dirs, tmp_path, capsys):
    out = tmp_path / "s.pt"
    assert main(["stats", "--model", tiny_dirs["gpt2"], "--layer", "2", "--tokens", "700", "--out", str(out)]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["layer"] == 2 and row["tokens"] >= 700 and out.exists()
    assert main(["stats", "--model", tiny_dirs["gpt2"], "--layer", "2", "--tokens", "700", "--out", str(out),
                 "--spectrum", "1e9"]) == 0
    layer, kept, share = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert (layer, share) == ("2", "(1.0e+00)") and int(kept) > 0  # every direction lies below 1e9
    assert main(["stats", "--model", tiny_dirs["gpt2"], "--layer", "2", "--spectrum", "small"]) == 2
    # a statistics file made for layer 2 is refused for an edit at layer 1
    rc = main(["edit", "--model", tiny_dirs["gpt2"], "--subject", "Paris", "--prompt", "{} is in", "--target", "France",
               "--layer", "1", "--stats", str(out), *FAST])
    assert rc == 2 and "layer" in capsys.readouterr().err
    assert main(["stats", "--model", tiny_dirs["gpt2"], "--layer", "12"]) == 2


def test_edit_refuses_stats_of_another_model(tiny_dirs, tmp_path, capsys):
    out = tmp_path / "llama.pt"
    assert main(["stats", "--model", tiny_dirs["llama"], "--layer", "1", "--tokens", "300", "--out", str(out)]) == 0
    rc = main(["edit", "--model", tiny_dirs["gpt2"], "--subject", "Paris", "--prompt", "{} is in", "--target", "France",
               "--layer", "1", "--stats", str(out), *FAST])
    assert rc == 2 and "model" in capsys.readouterr().err
