"""Ray: trace-facts, eval and key statistics on two local workers give the single-process results."""
from __future__ import annotations

import json

import pytest
import torch

ray = pytest.importorskip("ray")

from factlocate import datasets  # noqa: E402
from factlocate.distributed import RayOptions, workers  # noqa: E402
from factlocate.editors.keyvalue import key_stats, key_stats_ray  # noqa: E402
from factlocate.evaluation import runner  # noqa: E402
from factlocate.tracing import RunSpec  # noqa: E402
from factlocate.tracing.facts import FactSetSpec, run_facts  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pool(tiny_dirs):
    with workers(RayOptions(workers=2, cpus_per_worker=1), tiny_dirs["gpt2"]) as p:
        yield p


def _facts(model, n=6):
    """Known facts relabelled with the tiny model's own answers, plus one it gets wrong."""
    from factlocate import predict
    from factlocate.datasets.known_facts import load_facts

    facts = load_facts()[:n]
    out = [dict(f, attribute=predict(model, f["prompt"], top_k=1)[0]["token"].strip() or "?") for f in facts]
    out[1]["attribute"] = "definitely-not-the-answer"
    return out


def _spec():
    return FactSetSpec(model="tiny", facts="custom", kinds=("hidden", "mlp"), window=2, sever="mlp",
                       run=RunSpec(samples=2, noise="s3"))


def _timeless(obj):
    """The result without wall times (they are the only thing a rerun may change)."""
    if isinstance(obj, dict):
        return {k: _timeless(v) for k, v in obj.items() if k not in ("seconds", "time", "edit_timings")}
    if isinstance(obj, list):
        return [_timeless(v) for v in obj]
    return obj


def _cases(folder):
    return {p.name: _timeless(json.loads(p.read_text())) for p in sorted((folder / "cases").glob("*.json"))}


def test_trace_facts_on_ray_equals_single_process(tiny_gpt2, pool, tmp_path):
    facts = _facts(tiny_gpt2)
    here = run_facts(tiny_gpt2, tmp_path / "here", _spec(), n=4, facts=facts, progress=False)
    there = run_facts(None, tmp_path / "ray", _spec(), n=4, facts=facts, pool=pool)
    assert json.dumps(here, sort_keys=True, default=str) == json.dumps(there, sort_keys=True, default=str)
    a, b = _cases(tmp_path / "here"), _cases(tmp_path / "ray")
    assert a == b  # the same facts traced, and (one torch thread per item on both sides) identical bit for bit
    assert here["n_traced"] == 4 and here["n_skipped"] == 1


def _eval(model, out, pool=None, spec=None, records=None):
    ds = datasets.load("counterfact-sample")
    records = records or ds.select(0, 4)
    params = runner.EvalParams(generation=False)
    overrides = dict(layer=1, v_num_grad_steps=3, stats_tokens=1000, context_template_lengths=[[5, 1]])
    for editor in ("unedited", "rome"):
        runner.run(model, ds, records, editor, out, params, overrides if editor == "rome" else None,
                   progress=False, pool=pool, model_spec=spec)
    return ds, records


def test_eval_on_ray_equals_single_process_and_survives_a_killed_worker(tiny_gpt2, tiny_dirs, pool, tmp_path,
                                                                         monkeypatch):
    _eval(tiny_gpt2, tmp_path / "here")
    killed = []

    def kill_once(key, value, p):
        if not killed:
            killed.append(key)
            ray.kill(p.actors[0], no_restart=False)  # Ray restarts it and retries what it was running

    real_map = pool.map
    monkeypatch.setattr(pool, "map", lambda task, items, desc="", on_result=None: real_map(task, items, desc,
                                                                                          kill_once))
    _eval(None, tmp_path / "ray", pool, tiny_dirs["gpt2"])
    assert killed
    for editor in ("unedited", "rome"):
        a, b = _cases(tmp_path / "here" / editor), _cases(tmp_path / "ray" / editor)
        assert sorted(a) == sorted(b) and len(a) == 4
        assert all(a[k] == b[k] for k in a), editor


def test_ray_alphaedit_prepares_once_per_worker_and_equals_single_process(tiny_gpt2, tiny_dirs, pool, tmp_path):
    ds = datasets.load("counterfact-sample")
    records = ds.select(0, 4)
    params = runner.EvalParams(generation=False)
    stats = key_stats.key_stats(tiny_gpt2, [1, 2], tokens_budget=1000, progress=False)
    median = float(torch.linalg.svdvals(stats[1].cov).double().median())  # keeps about half the directions
    overrides = dict(layers=[1, 2], v_num_grad_steps=3, stats_tokens=1000, nullspace_threshold=median,
                     context_template_lengths=[[5, 1]])
    for out, model, p in ((tmp_path / "here", tiny_gpt2, None), (tmp_path / "ray", None, pool)):
        runner.run(model, ds, records, "alphaedit", out, params, overrides, progress=False, pool=p,
                   model_spec=tiny_dirs["gpt2"])
    a, b = _cases(tmp_path / "here" / "alphaedit"), _cases(tmp_path / "ray" / "alphaedit")
    assert len(a) == 4 and a == b
    assert all(c["post"]["scores"] != c["pre"]["scores"] for c in a.values())  # the edits did something
    # a worker keeps one run's projections (this run's, not the earlier ROME runs' entries)
    kept = [v["prepared"] for _, v in (ray.get(w.run.remote("info", "info", {})) for w in pool.actors)]
    assert all(p in ([], ["alphaedit"]) for p in kept) and ["alphaedit"] in kept


def test_interrupted_ray_eval_resumes_without_redoing_cases(tiny_dirs, pool, tmp_path, monkeypatch):
    real_map, seen = pool.map, []

    def stop_after_two(key, value, p):
        seen.append(key)
        if len(seen) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(pool, "map", lambda task, items, desc="", on_result=None: real_map(task, items, desc,
                                                                                          stop_after_two))
    with pytest.raises(KeyboardInterrupt):
        _eval(None, tmp_path, pool, tiny_dirs["gpt2"])
    monkeypatch.setattr(pool, "map", real_map)
    first = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "unedited" / "cases").glob("*.json")}
    assert len(first) >= 1
    _eval(None, tmp_path, pool, tiny_dirs["gpt2"])
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "unedited" / "cases").glob("*.json")}
    assert len(after) == 4 and all(after[k] == first[k] for k in first)  # written cases were not redone


def test_sharded_statistics_equal_single_process(tiny_gpt2, pool, tmp_path, monkeypatch):
    monkeypatch.setenv("FACTLOCATE_CACHE", str(tmp_path / "single"))
    single = key_stats.key_stats(tiny_gpt2, [1, 2], tokens_budget=3000, batch_tokens=512, progress=False)
    monkeypatch.setenv("FACTLOCATE_CACHE", str(tmp_path / "sharded"))
    sharded = key_stats_ray.key_stats_on(pool, [1, 2], tokens_budget=3000, batch_tokens=512, batches_per_shard=2)
    for layer in (1, 2):
        a, b = single[layer], sharded[layer]
        assert a.n_tokens == b.n_tokens and a.n_texts == b.n_texts and a.meta == b.meta
        rel = float((a.cov - b.cov).abs().max() / a.cov.abs().max())
        assert rel < 1e-10, rel


def test_ray_missing_is_a_one_line_error(monkeypatch, capsys):
    import builtins

    from factlocate.cli import main

    real_import = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("no ray")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    rc = main(["trace-facts", "--ray", "--n", "1", "--out", "/tmp/never"])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install 'factlocate[ray]'" in err and "Traceback" not in err
