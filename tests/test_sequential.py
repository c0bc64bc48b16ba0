"""AlphaEdit, batched target vectors and the sequential protocol, on tiny models."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from factlocate import arch, datasets, tokens
from factlocate.datasets import corpus
from factlocate.editors.keyvalue import (alphaedit, context_templates, key_stats, keys, memit, target_batch,
                                        target_vector)
from factlocate.editors.base import EditRequest
from factlocate.errors import FactlocateError
from factlocate.evaluation import sequential

TEMPLATES = ["{}", "The city. {}", "In the news today. {}"]
REQUESTS = [
    EditRequest("{} is located in the city of", "The Eiffel Tower", "Rome", target_true="Paris"),
    EditRequest("{} plays the sport of", "LeBron James", "football", target_true="basketball"),
    EditRequest("The mother tongue of {} is", "Danielle Darrieux", "English", target_true="French"),
]
STATS_TOKENS = 3000

pytestmark = pytest.mark.usefixtures("one_thread")


def _threshold(model, layers, quantile: float = 0.5) -> float:
    """A quantile of C₀'s singular values at the first layer (0.5 keeps about half the directions)."""
    stats = key_stats.key_stats(model, layers, tokens_budget=STATS_TOKENS, progress=False)
    return float(torch.quantile(torch.linalg.svdvals(stats[layers[0]].cov).double(), quantile))


def _alpha_hp(model, quantile: float = 0.5, **kw):
    base = dict(layers=[1, 2], v_num_grad_steps=8, stats_tokens=STATS_TOKENS,
                nullspace_threshold=_threshold(model, [1, 2], quantile))
    return alphaedit.HParams(**{**base, **kw})


def test_projection_is_a_projector_onto_small_directions(tiny_gpt2):
    stats = key_stats.key_stats(tiny_gpt2, 1, tokens_budget=STATS_TOKENS, progress=False)
    s = torch.linalg.svdvals(stats.cov.double()).sort().values
    middle = len(s) // 2  # halfway between two singular values, so no direction sits on the threshold
    threshold = float((s[middle - 1] + s[middle]) / 2)
    p, kept = alphaedit.projection(stats.cov, threshold)
    assert 0 < kept < tiny_gpt2.cfg.d_mlp
    torch.testing.assert_close(p @ p, p, atol=1e-10, rtol=0)
    torch.testing.assert_close(p, p.T, atol=1e-12, rtol=0)
    assert round(float(torch.trace(p))) == kept
    left = torch.linalg.eigvalsh(p @ stats.cov.double() @ p)
    assert float(left.max()) < threshold  # no large direction of C₀ survives the projection
    # The spectrum table counts the same directions, and their share of C₀'s trace.
    (t, n, share), (_, n_all, share_all) = alphaedit.spectrum(stats.cov, [threshold, 1e9])
    assert n == kept and n_all == tiny_gpt2.cfg.d_mlp and share_all == pytest.approx(1.0)
    assert share == pytest.approx(float(torch.trace(p @ stats.cov.double())) / float(torch.trace(stats.cov.double())))


def test_alphaedit_raises_the_new_targets(tiny_gpt2):
    hp = _alpha_hp(tiny_gpt2, v_num_grad_steps=20, clamp_norm_factor=4.0, L2=1.0)
    alpha = alphaedit.compute_edit(tiny_gpt2, REQUESTS, hp, templates=TEMPLATES, progress=False)
    assert all(a["new"] > b["new"] for a, b in zip(alpha.probs_after, alpha.probs_before))
    # The state carries the batch's keys for the next batch.
    state = alpha.extra["state"]
    assert float(state.preserved[1].abs().sum()) > 0
    torch.testing.assert_close(state.projections[1], state.projections[1].T, atol=1e-12, rtol=0)


def test_alphaedit_spares_preserved_keys_far_more_than_memit(tiny_gpt2):
    hp = _alpha_hp(tiny_gpt2, quantile=0.1)  # the null space: the 10% smallest directions of C₀
    alpha = alphaedit.compute_edit(tiny_gpt2, REQUESTS, hp, templates=TEMPLATES, progress=False)
    mem = memit.compute_edit(tiny_gpt2, REQUESTS, memit.HParams(layers=[1, 2], v_num_grad_steps=8,
                             stats_tokens=STATS_TOKENS, mom2_update_weight=1.0), templates=TEMPLATES, progress=False)
    assert 0 < alpha.extra["kept_directions"][1] < tiny_gpt2.cfg.d_mlp
    # Preserved keys: ordinary text's keys at the edited layer (texts the statistics did not read).
    texts = [tiny_gpt2.tokenizer.decode(tokens.encode(tiny_gpt2, t)[:32]) for t in corpus.corpus_texts()[100:140]]
    positions = [len(tokens.encode(tiny_gpt2, t)) - 1 for t in texts]
    k0 = keys.keys_and_values(tiny_gpt2, texts, positions, 1)[0].double()

    def moved(result):
        d = next(x for x in result.deltas if x.name == arch.mlp_out_name(tiny_gpt2, 1)).delta.double()
        d = d.T if arch.stored_transposed(tiny_gpt2, 1, "mlp.out") else d  # [d_mlp, d_model]
        return float((k0 @ d).norm())

    assert moved(alpha) < 0.2 * moved(mem)


def test_batched_targets_equal_one_at_a_time_targets(tiny_model):
    layer = 2
    hook = arch.hook_resid(layer)
    batches = [target_vector.build_batch(tiny_model, r.prompt, r.subject, r.target_new, TEMPLATES) for r in REQUESTS]
    options = dict(v_num_grad_steps=10, v_lr=0.5, v_weight_decay=0.5, clamp_norm_factor=0.75, kl_factor=0.0625)
    together = target_batch.optimise_many(tiny_model, batches, hook, layer, **options)
    for b, t in zip(batches, together):
        alone = target_vector.optimise(tiny_model, b, hook, layer, **options)
        assert len(alone.losses) == len(t.losses)  # the same early stop
        torch.testing.assert_close(t.v_init, alone.v_init, atol=1e-5, rtol=0)
        torch.testing.assert_close(t.target, alone.target, atol=1e-4, rtol=1e-4)


def test_a_request_that_stops_early_keeps_its_target_while_others_go_on(tiny_model, monkeypatch):
    """A stopped request's δ stays where its loss fell below the stop: batched equals one at a time."""
    layer, hook = 2, arch.hook_resid(2)
    batches = [target_vector.build_batch(tiny_model, r.prompt, r.subject, r.target_new, TEMPLATES) for r in REQUESTS]
    options = dict(v_num_grad_steps=12, v_lr=0.5, v_weight_decay=0.5, clamp_norm_factor=4.0, kl_factor=0.0625)
    monkeypatch.setattr(target_batch, "STOP_LOSS", float("-inf"))
    free = target_batch.optimise_many(tiny_model, batches, hook, layer, **options)
    # A stop level that request 0 crosses at its fourth loss, before the others finish.
    monkeypatch.setattr(target_batch, "STOP_LOSS", free[0].losses[3]["loss"] + 1e-6)
    together = target_batch.optimise_many(tiny_model, batches, hook, layer, **options)
    assert len(together[0].losses) == 4 < max(len(t.losses) for t in together)
    for b, t in zip(batches, together):
        alone = target_vector.optimise(tiny_model, b, hook, layer, **options)
        assert len(alone.losses) == len(t.losses)
        torch.testing.assert_close(t.target, alone.target, atol=1e-4, rtol=1e-4)


def test_batched_targets_match_one_at_a_time_to_float64_rounding(tiny_dirs):
    """In float64 (δ, Adam and the losses follow the model's dtype) batching changes z only at rounding level."""
    from factlocate import load_model

    model = load_model(tiny_dirs["gpt2"], dtype=torch.float64)
    layer, hook = 2, arch.hook_resid(2)
    batches = [target_vector.build_batch(model, r.prompt, r.subject, r.target_new, TEMPLATES) for r in REQUESTS]
    options = dict(v_num_grad_steps=10, v_lr=0.5, v_weight_decay=0.5, clamp_norm_factor=0.75, kl_factor=0.0625)
    together = target_batch.optimise_many(model, batches, hook, layer, **options)
    for b, t in zip(batches, together):
        alone = target_vector.optimise(model, b, hook, layer, **options)
        assert t.delta.dtype == torch.float64 and len(alone.losses) == len(t.losses)
        torch.testing.assert_close(t.target, alone.target, atol=1e-9, rtol=0)


def _records():
    ds = datasets.load("counterfact-sample")
    return ds, ds.records


def _stopped_after_one_batch(monkeypatch, editor, run) -> None:
    """Call `run`, interrupted as the editor starts its second batch; the registry is restored after."""
    import dataclasses

    from factlocate import editors

    real, calls = editor.EDITOR.compute_edit, {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    with monkeypatch.context() as patched:
        patched.setitem(editors.EDITORS, editor.NAME, dataclasses.replace(editor.EDITOR, compute_edit=flaky))
        with pytest.raises(KeyboardInterrupt):
            run()


def test_sequential_run_resumes_to_the_same_deltas_and_restores_weights(tiny_gpt2, tmp_path, monkeypatch):
    ds, records = _records()
    params = sequential.SequentialParams(edits=4, batch=2, probe_cases=2, ppl_tokens=200, gen_cases=1, max_length=12)
    overrides = dict(layers=[1, 2], v_num_grad_steps=4, stats_tokens=STATS_TOKENS,
                     nullspace_threshold=_threshold(tiny_gpt2, [1, 2]), context_template_lengths=[[5, 1]])
    before = {n: p.detach().clone() for n, p in arch.hf_named_parameters(tiny_gpt2)}
    whole = sequential.run(tiny_gpt2, ds, records, "alphaedit", tmp_path / "whole", params, overrides, progress=False)

    # Interrupted after the first batch, then rerun: the same final deltas.
    _stopped_after_one_batch(monkeypatch, alphaedit, lambda: sequential.run(
        tiny_gpt2, ds, records, "alphaedit", tmp_path / "resumed", params, overrides, progress=False))
    resumed = sequential.run(tiny_gpt2, ds, records, "alphaedit", tmp_path / "resumed", params, overrides,
                             progress=False)
    a, b = sequential.final_deltas(whole), sequential.final_deltas(resumed)
    assert sorted(a) == sorted(b) and all(torch.equal(a[n], b[n]) for n in a)
    # Every run leaves the model bit-exactly as loaded.
    assert all(torch.equal(arch.hf_parameter(tiny_gpt2, n), w) for n, w in before.items())
    # The final weights come back from the saved deltas, export as an HF folder, and revert bit-exactly.
    from transformers import AutoModelForCausalLM

    from factlocate import deltas

    with sequential.final_weights(tiny_gpt2, whole):
        edited = {n: arch.hf_parameter(tiny_gpt2, n).detach().clone() for n in a}
        deltas.export(tiny_gpt2, tmp_path / "exported")
    assert all(torch.equal(edited[n], (before[n].double() + a[n]).to(before[n].dtype)) for n in a)
    assert all(not torch.equal(edited[n], before[n]) for n in a)
    assert all(torch.equal(arch.hf_parameter(tiny_gpt2, n), w) for n, w in before.items())
    hf = dict(AutoModelForCausalLM.from_pretrained(tmp_path / "exported").named_parameters())
    assert all(torch.equal(hf[n].detach(), edited[n]) for n in a)
    logs = [json.loads(p.read_text()) for p in sorted((whole / "batches").glob("*.json"))]
    assert {log["edits"] for log in logs} == {0, 2, 4}
    assert all({"targets", "layers"} <= set(log["edit_timings"]) for log in logs if log["edits"])
    assert all(log["perplexity"] > 1 for log in logs)
    assert len(list((whole / "final").glob("*.json"))) == 4
    assert len(list((whole / "unedited").glob("*.json"))) == 4
    md = sequential.write_report(tmp_path / "whole")
    assert "alphaedit" in md and (tmp_path / "whole" / "curves.html").exists()
    lines = md.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("| editor"))
    assert lines[head].count("|") == lines[head + 1].count("|") == lines[head + 2].count("|")
    assert lines[head + 3].startswith("| unedited (alphaedit cases) | 4 |")
    assert lines[head + 3].count("|") == lines[head].count("|")
    table = lines[lines.index("## alphaedit: after each logged batch") + 2:]
    rows = [line for line in table[2:] if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows] == ["| 0", "| 2", "| 4"]  # one row per logged batch
    assert all(row.count("|") == table[0].count("|") for row in rows)


def test_key_statistics_come_from_the_unedited_weights(tiny_gpt2, tmp_path, monkeypatch):
    from factlocate.models import cache_dir

    # Made while an edit is applied, they would be cached as the unedited model's: refused.
    w = arch.hf_parameter(tiny_gpt2, arch.mlp_out_name(tiny_gpt2, 0))
    original = w.detach().clone()
    with torch.no_grad():
        w.add_(0.5)
    try:
        with pytest.raises(FactlocateError, match="an edit is applied"):
            key_stats.key_stats(tiny_gpt2, [1, 2], tokens_budget=STATS_TOKENS + 1, progress=False)
        with pytest.raises(FactlocateError, match="an edit is applied"):  # nor templates, generated by it
            context_templates.context_templates(tiny_gpt2, [[4, 1]], seed=12345)
    finally:
        with torch.no_grad():
            w.copy_(original)
    assert not list((cache_dir() / "stats").glob(f"*_{STATS_TOKENS + 1}tok_*"))

    # MEMIT's update reads every layer's C₀ before the first delta, so an uncached run makes them all unedited.
    hp = memit.HParams(layers=[1, 2], v_num_grad_steps=2, stats_tokens=STATS_TOKENS + 2)
    zs, _ = memit.compute_targets(tiny_gpt2, REQUESTS[:2], TEMPLATES, hp, progress=False)
    memit.spread(tiny_gpt2, REQUESTS[:2], TEMPLATES, zs, hp, memit.covariance_update(tiny_gpt2, hp))
    assert len(list((cache_dir() / "stats").glob(f"*_{STATS_TOKENS + 2}tok_*"))) == 2

    # A sequential run resumed where the statistics are gone (a fresh machine) makes them before its edits.
    ds, records = _records()
    params = sequential.SequentialParams(edits=2, batch=1, probe_cases=1, ppl_tokens=100, gen_cases=0)
    overrides = dict(layers=[1, 2], v_num_grad_steps=2, stats_tokens=STATS_TOKENS + 3,
                     context_template_lengths=[[5, 1]])
    _stopped_after_one_batch(monkeypatch, memit, lambda: sequential.run(
        tiny_gpt2, ds, records, "memit", tmp_path, params, overrides, progress=False))
    for f in (cache_dir() / "stats").glob(f"*_{STATS_TOKENS + 3}tok_*"):
        f.unlink()
    sequential.run(tiny_gpt2, ds, records, "memit", tmp_path, params, overrides, progress=False)
    assert (tmp_path / "memit" / "done.json").exists()


def test_sequential_memit_and_rome_and_errors(tiny_gpt2, tmp_path, monkeypatch):
    from factlocate.editors.keyvalue import context_templates as ct

    ds, records = _records()
    params = sequential.SequentialParams(edits=2, batch=1, probe_cases=1, ppl_tokens=100, gen_cases=0, log_every=2)
    made, real = [], ct.context_templates
    monkeypatch.setattr(ct, "context_templates", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    sequential.run(tiny_gpt2, ds, records, "rome", tmp_path, params,
                   dict(layer=1, v_num_grad_steps=3, stats_tokens=STATS_TOKENS, context_template_lengths=[[5, 1]]),
                   progress=False)
    assert len(made) == 1  # templates come from the unedited weights, once, for both edits
    sequential.run(tiny_gpt2, ds, records, "memit", tmp_path, params,
                   dict(layers=[1, 2], v_num_grad_steps=3, stats_tokens=STATS_TOKENS, context_template_lengths=[[5, 1]]),
                   progress=False)
    runs = sequential.load_runs(tmp_path)
    assert {r["name"] for r in runs} == {"rome", "memit"}
    # Known-fact retention after every logged batch, against the unedited answers: all kept at the start.
    for r in runs:
        assert r["logs"][0]["edits"] == 0 and r["logs"][0]["retention"] == 1.0
        assert all(0 <= log["retention"] <= 1 and log["retention_facts"] > 1000 for log in r["logs"])
    assert "known facts retained" in "\n".join(sequential.trajectory(runs[0]))
    # A finished run is done without its state file: a rerun edits nothing.
    (tmp_path / "rome" / "state.safetensors").unlink()
    from factlocate.editors.keyvalue import rome

    monkeypatch.setattr(rome, "compute_edit", lambda *a, **k: pytest.fail("a finished run edited again"))
    sequential.run(tiny_gpt2, ds, records, "rome", tmp_path, params,
                   dict(layer=1, v_num_grad_steps=3, stats_tokens=STATS_TOKENS, context_template_lengths=[[5, 1]]),
                   progress=False)
    assert sequential.load_runs(tmp_path) == runs
    assert all(len(r["final"]) == 2 for r in runs)
    with pytest.raises(FactlocateError, match="fewer than --edits"):
        sequential.select(records[:3], 5)
    with pytest.raises(FactlocateError, match="different"):
        sequential.run(tiny_gpt2, ds, records, "rome", tmp_path, sequential.SequentialParams(edits=2, batch=2),
                       dict(layer=1), progress=False)


def test_sequential_cli_reports_and_exports(tiny_dirs, tmp_path, capsys, monkeypatch):
    from factlocate.cli import main

    monkeypatch.setenv("FACTLOCATE_OFFLINE", "1")
    out = tmp_path / "seq"
    rc = main(["eval", "--sequential", "--editor", "rome", "--model", tiny_dirs["gpt2"], "--edits", "2",
               "--batch", "1", "--probe-cases", "1", "--no-generation", "--layer", "1", "--set", "v_num_grad_steps=3",
               "--set", f"stats_tokens={STATS_TOKENS}", "--out", str(out), "--export", str(tmp_path / "edited")])
    printed = capsys.readouterr().out
    assert rc == 0 and "| rome | 2 | 1 |" in printed and "exported rome's edited model" in printed
    assert (tmp_path / "edited" / "config.json").exists() and (out / "curves.html").exists()


def test_missing_threshold_is_a_clear_error():
    with pytest.raises(FactlocateError, match="nullspace_threshold"):
        alphaedit.HParams.load("someone/unknown-model", {"layers": [1, 2]})


def test_scan_starts_from_memit_where_a_model_has_no_alphaedit_config(tmp_path, monkeypatch):
    import shutil

    from factlocate.editors.base import CONFIGS_ENV, configs_dir
    from tools import alphaedit_scan

    configs = tmp_path / "configs"  # the shipped configs, less Gemma's AlphaEdit one (as before its scan)
    shutil.copytree(configs_dir(), configs)
    (configs / "alphaedit" / "gemma-3-270m.yaml").unlink()
    monkeypatch.setenv(CONFIGS_ENV, str(configs))
    hp = alphaedit_scan.scan_hparams("gemma-3-270m", {"nullspace_threshold": 2e-2})
    shipped = memit.HParams.load("gemma-3-270m")
    assert hp.layers == shipped.layers and hp.mom2_update_weight == shipped.mom2_update_weight
    assert (hp.nullspace_threshold, hp.L2) == (2e-2, 10.0)
    assert alphaedit_scan.memit_part(hp, "gemma-3-270m", {}) == shipped
    with_config = alphaedit_scan.scan_hparams("smollm2-135m", {"L2": 1.0})
    assert with_config == alphaedit.HParams.load("smollm2-135m", {"L2": 1.0})


def test_the_scans_memit_row_uses_memits_lambda_where_the_alphaedit_config_has_none():
    # AlphaEdit's configs leave out MEMIT's λ, which AlphaEdit never reads; the reference row must not fall back
    # to the dataclass default (15,000) where the model's MEMIT config sets its own (Gemma 1,900, SmolLM2 1,400).
    from tools import alphaedit_scan

    for model in ("gemma-3-270m", "smollm2-135m"):
        hp = alphaedit_scan.scan_hparams(model, {"nullspace_threshold": 2e-2})
        shipped = memit.HParams.load(model)
        assert hp.mom2_update_weight != shipped.mom2_update_weight  # what the row used to edit with
        assert alphaedit_scan.memit_part(hp, model, {}) == shipped
        assert alphaedit_scan.memit_part(hp, model, {"mom2_update_weight": 5.0}).mom2_update_weight == 5.0
        from_file = alphaedit.HParams(**{**dataclasses.asdict(hp), "mom2_update_weight": 7.0})  # an --hparams file's
        assert alphaedit_scan.memit_part(from_file, model, {}).mom2_update_weight == 7.0


def test_scan_writes_memit_and_every_setting_and_resumes(tiny_dirs, tmp_path, monkeypatch):
    from tools import alphaedit_scan

    monkeypatch.setenv("FACTLOCATE_OFFLINE", "1")

    def scan(out):
        return alphaedit_scan.main(["--model", tiny_dirs["gpt2"], "--n", "2", "--probe", "1", "--thresholds",
                                    "1e-3,1e9", "--l2", "10", "--layer", "1,2", "--set", "v_num_grad_steps=2",
                                    "--set", f"stats_tokens={STATS_TOKENS}", "--set",
                                    "context_template_lengths=[[5,1]]", "--out", str(out)])

    assert scan(tmp_path / "scan.json") == 0
    data = json.loads((tmp_path / "scan.json").read_text())
    assert [r["editor"] for r in data["rows"]] == ["unedited", "memit", "alphaedit", "alphaedit"]
    dev = datasets.load("counterfact-sample").split("dev")
    assert data["split"] == "dev" and data["case_ids"] == [r.case_id for r in dev[:2]]  # it chooses: dev only
    assert data["choice"] == alphaedit_scan.choose(data["rows"])
    assert data["hparams"]["layers"] == [1, 2] and data["command"].endswith("scan.json")
    assert not (tmp_path / "scan.json.partial").exists()
    everything = data["rows"][3]  # a threshold above every singular value: the whole space is free
    assert set(everything["kept"].values()) == {256}
    assert all(0 <= r["ES"] <= 1 and r["ppl"] > 1 for r in data["rows"])

    # Stopped during the first AlphaEdit row, then resumed: the targets and the rows before are not made again.
    write_layers = alphaedit.write_layers
    monkeypatch.setattr(alphaedit, "write_layers", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        scan(tmp_path / "again.json")
    assert (tmp_path / "again.json.partial" / "targets.safetensors").exists()
    monkeypatch.setattr(alphaedit, "write_layers", write_layers)
    monkeypatch.setattr(memit, "compute_targets", lambda *a, **k: pytest.fail("targets made again"))
    monkeypatch.setattr(memit, "covariance_update", lambda *a, **k: pytest.fail("MEMIT's row made again"))
    assert scan(tmp_path / "again.json") == 0
    assert json.loads((tmp_path / "again.json").read_text())["rows"] == data["rows"]
    assert not (tmp_path / "again.json.partial").exists()


def test_nullspace_share_measures_the_keys_inside_the_null_space(tiny_dirs, tmp_path, monkeypatch):
    from tools import nullspace_share

    # By hand: C₀ uses the first axis only, so the null space is the other two; a key along (1, 1, 0) has half
    # of its squared norm there, and none of C₀'s trace is.
    cov, key = torch.diag(torch.tensor([4.0, 0.0, 0.0])), torch.tensor([[1.0], [1.0], [0.0]])
    row = nullspace_share.layer_row(cov, key, 1e-3)
    assert row["kept"] == 2 and row["key_share"]["median"] == pytest.approx(0.5) and row["trace_share"] == 0.0

    monkeypatch.setenv("FACTLOCATE_OFFLINE", "1")

    def share(threshold):
        out = tmp_path / f"{threshold}.json"
        assert nullspace_share.main(["--model", tiny_dirs["gpt2"], "--n", "2", "--layer", "1,2", "--set",
                                     f"nullspace_threshold={threshold}", "--set", f"stats_tokens={STATS_TOKENS}",
                                     "--set", "context_template_lengths=[[5,1]]", "--out", str(out)]) == 0
        return json.loads(out.read_text())

    everything = share(1e9)  # every direction is free: all of every key and of C₀ lies in the null space
    assert [r["layer"] for r in everything["layers"]] == [1, 2] and everything["command"].endswith("1000000000.0.json")
    for r in everything["layers"]:
        assert r["kept"] == r["d_mlp"] == 256
        assert r["key_share"]["min"] == pytest.approx(1.0) and r["trace_share"] == pytest.approx(1.0)
    nothing = share(1e-30)
    assert all(r["kept"] == 0 and r["key_share"]["max"] == 0.0 for r in nothing["layers"])


def test_an_evaluation_run_prepares_alphaedits_projections_once(tiny_gpt2, tmp_path, monkeypatch):
    """The per-case protocol edits from the original weights, so every case shares one set of projections."""
    from factlocate.evaluation import runner

    overrides = dict(layers=[1, 2], v_num_grad_steps=2, stats_tokens=STATS_TOKENS, context_template_lengths=[[5, 1]],
                     nullspace_threshold=_threshold(tiny_gpt2, [1, 2]))
    hp = alphaedit.HParams(**overrides)
    plain = alphaedit.compute_edit(tiny_gpt2, REQUESTS[:1], hp, progress=False)
    ready = alphaedit.compute_edit(tiny_gpt2, REQUESTS[:1], hp, progress=False, **alphaedit.prepare(tiny_gpt2, hp))
    assert [d.name for d in plain.deltas] == [d.name for d in ready.deltas]
    assert all(torch.equal(a.delta, b.delta) for a, b in zip(plain.deltas, ready.deltas))

    made = []
    initial_state = alphaedit.initial_state
    monkeypatch.setattr(alphaedit, "initial_state", lambda *a, **k: made.append(1) or initial_state(*a, **k))
    ds = datasets.load("counterfact-sample")
    folder = runner.run(tiny_gpt2, ds, ds.select(0, 3), "alphaedit", tmp_path, runner.EvalParams(generation=False),
                        overrides, progress=False, pre_cache=False)
    assert len(made) == 1 and len(list((folder / "cases").glob("*.json"))) == 3
    runner.run(tiny_gpt2, ds, ds.select(0, 3), "alphaedit", tmp_path, runner.EvalParams(generation=False),
               overrides, progress=False, pre_cache=False)
    assert len(made) == 1  # a finished run prepares nothing


def test_sequential_logs_generated_efficacy_and_portability_per_batch(tiny_gpt2, tmp_path):
    """Every logged point: the greedy answers of `gen_probe` of the batch's cases, and the first batch's one-hop
    questions (from a portability file) scored on the current weights; an older run's params stay the same run."""
    ds, records = _records()
    first = records[0]
    hop = {"case_id": first.case_id, "portability": {"New Question": f"Where is {first.subject}?",
                                                     "New Answer": first.target_new}}
    path = tmp_path / "hops.json"
    path.write_text(json.dumps([hop]))
    params = sequential.SequentialParams(edits=2, batch=1, probe_cases=1, ppl_tokens=100, gen_cases=0,
                                         gen_probe=1, portability=str(path))
    folder = sequential.run(tiny_gpt2, ds, records, "rome", tmp_path / "runs", params,
                            dict(layer=1, v_num_grad_steps=3, stats_tokens=STATS_TOKENS,
                                 context_template_lengths=[[5, 1]]), progress=False)
    logs = sorted((json.loads(p.read_text()) for p in (folder / "batches").glob("*.json")), key=lambda x: x["edits"])
    assert logs[0]["generated_batch_efficacy"] is None  # no batch before the first edit
    assert all(log["generated_batch_efficacy"] in (0.0, 1.0) for log in logs[1:])  # one case judged per batch
    assert all(log["first_batch_portability"]["n"] == 1 and
               0 <= log["first_batch_portability"]["teacher_forced"] <= 1 for log in logs)
    assert "portability, batch 1" in "\n".join(sequential.trajectory(sequential.load_runs(tmp_path / "runs")[0]))
    old = {"sequential": {"edits": 2, "batch": 1}}
    assert sequential.protocol.same_run(old, {"sequential": {"edits": 2, "batch": 1, "gen_probe": 0,
                                                             "portability": None, "leave_out": None}})
    assert not sequential.protocol.same_run(old, {"sequential": {"edits": 2, "batch": 1, "gen_probe": 10,
                                                                 "portability": None}})


def test_a_sequential_run_leaves_out_the_cases_choices_were_made_on(tiny_gpt2, tmp_path):
    """With leave_out, no record sharing a text with the named split's records is edited, and params.json says
    how many were left out."""
    ds = datasets.load("counterfact-sample")
    dev, test = ds.split("dev"), ds.split("test")
    params = sequential.SequentialParams(edits=2, batch=1, probe_cases=1, ppl_tokens=100, gen_cases=0, gen_probe=0,
                                         leave_out="counterfact-sample:dev")
    records = dev[:2] + test[:3]
    assert sequential.eligible(records, params) == (test[:3], 2)
    assert sequential.eligible(records, dataclasses.replace(params, leave_out=None)) == (records, 0)
    folder = sequential.run(tiny_gpt2, ds, records, "rome", tmp_path, params,
                            dict(layer=1, v_num_grad_steps=2, stats_tokens=STATS_TOKENS,
                                 context_template_lengths=[[5, 1]]), progress=False)
    saved = json.loads((folder / "params.json").read_text())
    assert saved["case_ids"] == [r.case_id for r in test[:2]] and saved["left_out"] == 2
    assert saved["sequential"]["leave_out"] == "counterfact-sample:dev"
    with pytest.raises(FactlocateError, match="DATASET:SPLIT"):
        sequential.SequentialParams(edits=1, batch=1, leave_out="counterfact-sample")


def test_the_scans_rule_keeps_the_papers_values_where_they_qualify():
    from tools.alphaedit_scan import choose

    def row(threshold, l2, es, ns, ppl):
        return {"editor": "alphaedit", "threshold": threshold, "L2": l2, "ES": es, "NS": ns, "ppl": ppl}

    memit_row = {"editor": "memit", "ES": 0.98, "NS": 0.70, "ppl": 40.0}
    lower = row(1e-2, 10.0, 0.97, 0.69, 39.0)  # qualifies, at less perplexity than the paper's
    paper = row(2e-2, 10.0, 0.99, 0.70, 39.5)
    assert choose([memit_row, lower, paper])["threshold"] == 2e-2  # the paper's qualify: they stand
    weak = row(2e-2, 10.0, 0.90, 0.70, 38.0)  # writes the batch too badly to qualify
    chosen = choose([memit_row, lower, weak, row(5e-3, 1.0, 0.99, 0.60, 37.0)])
    assert (chosen["threshold"], chosen["L2"], chosen["qualified"], chosen["paper_qualifies"]) == (1e-2, 10.0, 1, False)
    empty = dict(row(1e-9, 10.0, 0.99, 0.70, 30.0), empty_null_space=True)
    assert choose([memit_row, weak, empty]) == {"threshold": 2e-2, "L2": 10.0, "qualified": 0,
                                                 "paper_qualifies": False, "rule": chosen["rule"]}


def test_the_scans_rule_on_the_committed_test_case_scans_keeps_the_papers_values():
    """notes/sequential.md says so of docs/alphaedit-scan/<model>.json (a check of the rule, not evidence)."""
    from pathlib import Path

    from tools.alphaedit_scan import PAPER, choose

    for name in ("smollm2-135m", "gemma-3-270m"):
        rows = json.loads((Path("docs/alphaedit-scan") / f"{name}.json").read_text())["rows"]
        chosen = choose(rows)
        assert {"threshold": chosen["threshold"], "L2": chosen["L2"]} == PAPER and chosen["paper_qualifies"]
