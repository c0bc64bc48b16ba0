"""Generation-based success: the matcher on hand-made cases, the stop rule, and greedy decoding on a tiny model."""
from __future__ import annotations

import json

import pytest
import torch

from factlocate.metrics import generated


@pytest.mark.parametrize("answer,target,exact,prefix,contains", [
    ("English", "English", True, True, True),
    ("english.", "English", True, True, True),                     # case and punctuation
    ("The Paris", "Paris", True, True, True),                      # an article
    ("Paris, the capital of France", "Paris", False, True, True),  # prefix, not exact
    ("Parisian food", "Paris", False, False, False),               # no word boundary
    ("the city of Paris", "Paris", False, False, True),            # contains only
    ("  New   York City ", "new york", False, True, True),         # white space
    ("Rome", "Paris", False, False, False),
    ("", "Paris", False, False, False),
    ("anything", "the", False, False, False),                      # a target that normalises to nothing
])
def test_judge_on_hand_made_cases(answer, target, exact, prefix, contains):
    assert generated.judge(answer, target) == {"exact": exact, "prefix": prefix, "contains": contains}


def test_normalise_and_the_stop_rule():
    assert generated.normalise("The U.S.A., an ally!") == "usa ally"
    assert generated.cut(" Paris. It is large") == "Paris"
    assert generated.cut(" French\nand more") == "French"
    assert generated.cut(" no stop at all ") == "no stop at all"


def test_greedy_answer_is_the_argmax_path_cut_at_the_stop(tiny_gpt2):
    from factlocate import tokens

    prompt = "The capital of Roman Republic is"
    answer = generated.greedy_answer(tiny_gpt2, prompt, max_new_tokens=6)
    ids = tokens.encode(tiny_gpt2, prompt)
    with torch.no_grad():
        for _ in range(6):  # the same path by hand
            ids.append(int(tiny_gpt2(torch.tensor([ids]))[0, -1].argmax()))
    by_hand = generated.cut(tiny_gpt2.tokenizer.decode(ids[len(tokens.encode(tiny_gpt2, prompt)):]))
    assert by_hand.startswith(answer) and "." not in answer and "\n" not in answer
    result = generated.success(tiny_gpt2, [prompt, prompt], answer or "x", max_new_tokens=6)
    assert result["answers"] == [answer, answer] and result["exact"] == (1.0 if answer else 0.0)


PROMPTS = ["The capital of Roman Republic is", "LeBron James plays the sport of", "Vinson Massif is located in",
           "The mother tongue of Danielle Darrieux is", "Paris"]


def test_batched_greedy_answers_are_the_plain_paths_on_every_architecture(tiny_model):
    plain = [generated.greedy_answer(tiny_model, p, max_new_tokens=8) for p in PROMPTS]
    assert generated.batched_greedy_verified(tiny_model)
    assert generated.greedy_answers(tiny_model, PROMPTS, max_new_tokens=8, batch_size=3) == plain


def test_batched_greedy_falls_back_to_the_plain_path_when_its_check_fails(tiny_gpt2, monkeypatch):
    from factlocate.identity import state

    plain = [generated.greedy_answer(tiny_gpt2, p, max_new_tokens=6) for p in PROMPTS[:3]]
    monkeypatch.setattr(state(tiny_gpt2), "checks", {})  # this model's verdicts, restored afterwards

    def broken(model, ids, mask, cached):  # a batch path that forgets the prompt
        step = real(model, ids, mask, cached)
        return lambda last: step(last) * 0 + torch.arange(model.cfg.d_vocab, dtype=torch.float)

    real = generated.decoder
    monkeypatch.setattr(generated, "decoder", broken)
    assert not generated.batched_greedy_verified(tiny_gpt2)
    assert generated.greedy_answers(tiny_gpt2, PROMPTS[:3], max_new_tokens=6) == plain


def test_record_scores_decode_every_group_in_one_batch(tiny_gpt2, monkeypatch):
    from factlocate import datasets

    record = datasets.load("counterfact-sample").select(0, 1)[0]
    calls = []
    real = generated.greedy_answers
    monkeypatch.setattr(generated, "greedy_answers", lambda m, ps, n=16: calls.append(len(ps)) or real(m, ps, n))
    scores = generated.record_scores(tiny_gpt2, record, max_new_tokens=4)
    assert calls == [1 + len(record.paraphrase_prompts) + len(record.neighborhood_prompts)]
    assert scores["neighborhood"]["answers"] == [generated.greedy_answer(tiny_gpt2, p, 4)
                                                 for p in record.neighborhood_prompts]


# ---------------------------------------------------------------- known-fact retention


def _facts():
    return [
        {"known_id": 1, "subject": "Roman Republic", "prompt": "The capital of Roman Republic is",
         "relation_id": "P36"},
        {"known_id": 2, "subject": "Vinson Massif", "prompt": "Vinson Massif is located in the continent of",
         "relation_id": "P30"},
        {"known_id": 3, "subject": "LeBron James", "prompt": "LeBron James plays the sport of", "relation_id": "P641"},
    ]


def test_retention_by_hand(tiny_gpt2, tmp_path, monkeypatch):
    from factlocate import arch, tokens
    from factlocate.deltas import WeightDelta, applied
    from factlocate.metrics import retention

    facts = _facts()
    cache = retention.RetentionCache(tiny_gpt2, facts, root=tmp_path)
    reference = cache.answers()
    for f in facts:  # each answer is the argmax after the prompt read alone
        alone = tiny_gpt2(torch.tensor([tokens.encode(tiny_gpt2, f["prompt"])]))[0, -1].argmax()
        assert reference[str(f["known_id"])] == int(alone)
    calls = []
    monkeypatch.setattr(retention, "top_answers", lambda *a, **k: calls.append(1) or {})
    assert retention.RetentionCache(tiny_gpt2, facts, root=tmp_path).answers() == reference and not calls
    monkeypatch.undo()

    same = retention.retention(tiny_gpt2, reference, edited=[("Roman Republic", "P36")], facts=facts)
    assert same == {"retained": 1.0, "n_facts": 2, "left_out": 1, "changed": []}
    assert retention.retention(tiny_gpt2, reference, [("Zzz", "P30")], facts, by_relation=True)["n_facts"] == 2
    # a reference that disagrees on one kept fact: 1 of 2 retained
    wrong = {**reference, "2": reference["2"] + 1}
    assert retention.retention(tiny_gpt2, wrong, [("Roman Republic", None)], facts)["retained"] == 0.5
    # a large edit elsewhere changes the kept facts' answers: retention falls, and names them
    g = torch.Generator().manual_seed(0)
    layer = int(tiny_gpt2.cfg.n_layers) - 1
    update = torch.randn(int(tiny_gpt2.cfg.d_mlp), int(tiny_gpt2.cfg.d_model), generator=g) * 5.0
    delta = WeightDelta(arch.mlp_out_name(tiny_gpt2, layer), arch.to_storage(tiny_gpt2, update, layer))
    with applied(tiny_gpt2, [delta]):
        hit = retention.retention(tiny_gpt2, reference, [("Roman Republic", "P36")], facts)
    assert hit["retained"] < 1.0 and hit["changed"]



# ---------------------------------------------------------------- portability


def test_portability_reads_the_one_hop_files_and_scores_by_hand(tiny_gpt2):
    from factlocate import scoring
    from factlocate.metrics import portability

    raws = [{"case_id": 7, "portability": {"New Question": "The capital of Roman Republic is", "New Answer": "Rome",
                                           "Recalled Relation": "(x, y, z)"}},
            {"case_id": 8, "portability": {}}]
    hops = portability.one_hop(raws, "counterfact")
    assert list(hops) == [7] and hops[7].answer == "Rome"
    assert list(portability.one_hop([{"src": "Q?", "portability": {"New Question": "q", "New Answer": "a"}}],
                                    "zsre")) == ["Q?"]
    result = portability.score(tiny_gpt2, hops[7], max_new_tokens=4)
    # teacher-forced: the share of the answer's tokens that are the argmax after the question and earlier tokens
    (_, correct), = scoring.target_token_logprobs(tiny_gpt2, [hops[7].question], ["Rome"])
    assert result["teacher_forced"] == float(correct.float().mean())
    assert result["generated"] == generated.judge(result["answer"], "Rome")
    assert result["answer"] == generated.greedy_answer(tiny_gpt2, hops[7].question, 4)


# ---------------------------------------------------------------- new columns from stored deltas


def test_a_run_keeps_low_rank_deltas_and_rescoring_reproduces_its_metrics(tiny_gpt2, tiny_dirs, tmp_path,
                                                                           monkeypatch, capsys):
    from factlocate import datasets
    from factlocate.evaluation import rescore, runner
    from factlocate.metrics import counterfact as cf_metrics

    monkeypatch.setenv("FACTLOCATE_OFFLINE", "1")
    ds = datasets.load("counterfact-sample")
    records = ds.split("dev")[:2]
    overrides = dict(layer=1, v_num_grad_steps=3, stats_tokens=1000, context_template_lengths=[[5, 1]])
    folder = runner.run(tiny_gpt2, ds, records, "rome", tmp_path, runner.EvalParams(generation=False), overrides,
                        progress=False, split="dev")
    case = json.loads((folder / "cases" / f"{records[0].case_id}.json").read_text())
    assert case["deltas"] == f"deltas/{records[0].case_id}.safetensors" and (folder / case["deltas"]).exists()

    def probabilities(model, record):
        return cf_metrics.case_scores(cf_metrics.prompt_nlls(model, record))

    done = rescore.rescore(tiny_gpt2, ds, folder, "again", probabilities, progress=False)
    assert sorted(done["scored"]) == sorted(r.case_id for r in records) and done["skipped"] == []
    for r in records:
        stored = json.loads((folder / "cases" / f"{r.case_id}.json").read_text())
        again = json.loads((folder / "extra-again" / f"{r.case_id}.json").read_text())
        for side in ("post", "pre"):
            for metric, value in stored[side]["scores"].items():
                assert again[side][metric] == pytest.approx(value, abs=1e-5), (side, metric)
    generated_columns = rescore.rescore(tiny_gpt2, ds, folder, "generated", generated.record_scores, progress=False)
    assert len(generated_columns["scored"]) == 2
    g = json.loads((folder / "extra-generated" / f"{records[0].case_id}.json").read_text())
    assert set(g["post"]) == {"rewrite", "paraphrase", "neighborhood"}
    assert len(g["post"]["neighborhood"]["answers"]) == len(records[0].neighborhood_prompts)
    from factlocate.cli import main

    assert main(["eval-rescore", str(folder), "--model", tiny_dirs["gpt2"]]) == 0  # resumes: nothing left to do
    assert "2 cases scored into extra-generated/, 0 without stored deltas" in capsys.readouterr().out
    assert main(["eval-rescore", str(tmp_path), "--model", tiny_dirs["gpt2"]]) == 2


def test_a_full_rank_delta_is_not_stored():
    from factlocate import deltas

    assert deltas.low_rank(torch.randn(64, 32)) is None
    a, b = deltas.low_rank(torch.randn(64, 1) @ torch.randn(1, 32))
    assert a.shape == (64, 1) and b.shape == (1, 32)


def test_the_summary_sets_generated_success_beside_teacher_forced(tiny_gpt2, tmp_path, monkeypatch):
    from factlocate import datasets
    from factlocate.evaluation import report, rescore, runner

    monkeypatch.setenv("FACTLOCATE_OFFLINE", "1")
    ds = datasets.load("counterfact-sample")
    records = ds.split("dev")[:2]
    overrides = dict(layer=1, v_num_grad_steps=2, stats_tokens=1000, context_template_lengths=[[5, 1]])
    folder = runner.run(tiny_gpt2, ds, records, "rome", tmp_path, runner.EvalParams(generation=False), overrides,
                        progress=False)
    assert "generated" not in report.write_summary(tmp_path, figures=False)  # nothing scored yet: no table
    rescore.rescore(tiny_gpt2, ds, folder, "generated", generated.record_scores, progress=False)
    md = report.write_summary(tmp_path, figures=False)
    assert "| ES | ES generated | gap |" in md and "| rome | edited | 2 |" in md and "| rome | unedited | 2 |" in md


def test_portability_columns_from_stored_deltas(tiny_gpt2, tiny_dirs, tmp_path, monkeypatch, capsys):
    """`eval-rescore --metric portability` scores the records that have a one-hop question, and the summary
    shows it unedited and edited; a record without a question is counted, not scored."""
    from factlocate import datasets
    from factlocate.cli import main
    from factlocate.evaluation import report, runner

    monkeypatch.setenv("FACTLOCATE_OFFLINE", "1")
    ds = datasets.load("zsre-sample")
    records = ds.split("dev")[:2]
    overrides = dict(layer=1, v_num_grad_steps=2, stats_tokens=1000, context_template_lengths=[[5, 1]])
    folder = runner.run(tiny_gpt2, ds, records, "rome", tmp_path, runner.EvalParams(generation=False), overrides,
                        progress=False, split="dev")
    hops = tmp_path / "hops.json"
    hops.write_text(json.dumps([{"src": records[0].rewrite_prompt, "portability": {
        "New Question": "Where is the city of its answer?", "New Answer": records[0].target_new}}]))
    assert main(["eval-rescore", str(folder), "--model", tiny_dirs["gpt2"], "--metric", "portability"]) == 2
    assert main(["eval-rescore", str(folder), "--model", tiny_dirs["gpt2"], "--metric", "portability",
                 "--portability", str(hops)]) == 0
    assert "1 cases scored into extra-portability/, 0 without stored deltas, 1 the metric does not cover" in \
        capsys.readouterr().out
    scored = json.loads((folder / "extra-portability" / f"{records[0].case_id}.json").read_text())
    assert 0 <= scored["post"]["teacher_forced"] <= 1 and set(scored["pre"]["generated"]) == {"exact", "prefix",
                                                                                              "contains"}
    md = report.write_summary(tmp_path, figures=False)
    assert "Portability" in md and "| rome | edited | 1 |" in md and "| rome | unedited | 1 |" in md
