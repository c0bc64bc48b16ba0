"""Seeded top-k sampling, batched: the generations of the paper's Figure 6 and GE fluency.

    texts = generate(model, ["My favourite city is"], max_length=30, seed=0)

Rows are left-padded into one batch with an attention mask; each step samples
the next token of every row from the `top_k` most likely tokens (renormalised),
with a `torch.Generator` seeded by `seed`, so the same call gives the same texts.
`max_length` counts the prompt's tokens (and BOS), as in the original
`generate_fast`. Texts are returned with the prompt, NFKD-normalised, with
blank-line breaks turned into spaces and special tokens removed.
"""
from __future__ import annotations

import unicodedata

import torch
from tqdm.auto import tqdm

from factlocate import arch, tokens
from factlocate.errors import FactlocateError
from factlocate.forward import control, kv


def bos_id(model) -> int:
    """The token a generation from nothing starts with (BOS, else EOS, as GPT-2's <|endoftext|>)."""
    tok = model.tokenizer
    i = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if i is None:
        raise FactlocateError("the tokenizer has neither a BOS nor an EOS token to start generation from")
    return int(i)


def clean(text: str) -> str:
    return unicodedata.normalize("NFKD", text).replace("\n\n", " ")


@torch.no_grad()
def generate(
    model,
    prompts: list[str],
    max_length: int = 50,
    top_k: int = 5,
    seed: int = 0,
    n_per_prompt: int = 1,
    batch_size: int = 32,
    bos: bool = False,
    progress: bool = False,
) -> list[str]:
    """`n_per_prompt` sampled continuations of each prompt (prompt-major order), as text.

    `bos=True` starts every row with BOS even where the architecture adds none
    (an empty prompt then samples from the model's unconditional distribution).
    """
    if top_k < 1:
        raise FactlocateError(f"top_k must be at least 1, got {top_k}")
    rows = []
    for p in prompts:
        ids = tokens.encode(model, p)
        if not ids or (bos and ids[0] != bos_id(model)):
            ids = [bos_id(model)] + ids
        rows += [ids] * n_per_prompt
    generator = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    chunks = range(0, len(rows), batch_size)
    for start in tqdm(chunks, desc="generate", disable=not progress, leave=False):
        out += _sample(model, rows[start : start + batch_size], max_length, top_k, generator)
    tok = model.tokenizer
    return [clean(tok.decode(r, skip_special_tokens=True)) for r in out]


def _sample(model, rows: list[list[int]], max_length: int, top_k: int, generator) -> list[list[int]]:
    """Sample until every row has `max_length` tokens.

    Rows are left-padded; positions count real tokens only. The Hugging Face
    model inside the bridge is called directly (its modules are the bridge's, so
    edits and hooks apply) because it takes position ids and can compute logits
    for the last position only. Each step reuses the KV cache where that was
    checked to match full forwards for this model (`cached_decoding_verified`),
    and reruns the whole sequence otherwise.
    """
    steps = max_length - min(len(r) for r in rows)
    if steps <= 0:
        return [r[:max(max_length, 1)] for r in rows]
    ids, mask = tokens.batch(model, rows, pad_left=True)
    step = decoder(model, ids, mask, cached_decoding_verified(model))
    new = []
    for _ in range(steps):
        probs = step(new[-1] if new else None).float().softmax(-1)
        top_p, top_i = probs.topk(top_k, dim=-1)
        top_p = top_p / top_p.sum(-1, keepdim=True)
        pick = torch.multinomial(top_p.cpu(), 1, generator=generator).to(top_i.device)
        new.append(top_i.gather(1, pick))
    new = torch.cat(new, dim=1).tolist()
    return [(r + n)[:max_length] for r, n in zip(rows, new)]


def decoder(model, ids: torch.Tensor, mask: torch.Tensor, cached: bool, head: bool | None = None):
    """A function: the tokens picked last step (None at first) -> next-token logits [rows, vocab].

    Shared by sampling here and greedy decoding (`metrics.generated`): rows left-padded, positions counting
    real tokens only, the KV cache reused when `cached`. `head`: the logits from the base model's last hidden
    state through `control.head_logits` (faster on CPU) rather than the model's own head; by default where
    `head_logits_verified(model)`.
    """
    hf = arch.hf_model(model)
    head = head_logits_verified(model) if head is None else head
    state = {"ids": ids, "mask": mask, "cache": kv.empty(model) if cached else None}

    def step(last):
        if last is not None:
            state["ids"] = torch.cat([state["ids"], last], dim=1)
            state["mask"] = torch.cat([state["mask"], torch.ones_like(last)], dim=1)
        positions = (state["mask"].cumsum(-1) - 1).clamp(min=0)
        feed, pos = state["ids"], positions
        if cached and last is not None:
            feed, pos = last, positions[:, -1:]
        inputs = dict(input_ids=feed, attention_mask=state["mask"], position_ids=pos,
                      past_key_values=state["cache"], use_cache=cached)
        if head:
            return control.head_logits(model, hf.base_model(**inputs).last_hidden_state[:, -1])
        return hf(**inputs, logits_to_keep=1).logits[:, -1]

    return step


def head_logits_verified(model) -> bool:
    """Whether `control.head_logits` on the base model's last hidden state gives the model's own logits
    (checked once per model: one step of two rows, one of them left-padded, both ways)."""
    def probe():
        prompt = kv.probe_ids(model, 4)
        ids, mask = tokens.batch(model, [prompt, prompt[1:]], pad_left=True)
        return tuple(decoder(model, ids, mask, False, head=h)(None).float().log_softmax(-1) for h in (True, False))

    return kv.verified(model, "decoding head", probe)


def cached_decoding_verified(model) -> bool:
    """Whether cached decoding gives the full-forward logits on this model (checked once, on a probe).

    Two rows (one left-padded) take three greedy steps, every path fed the full forward's tokens. Each
    row alone, without padding, is the plain path in a second layout: the cache may differ from the full
    forward by as much as the full forward differs from itself there. (After 200 sequential ROME edits on
    SmolLM2-135M the two differed by 2.3e-4 in log-probability, and full forwards by 3.5e-4.)
    """
    def run(rows, cached, picks=None):
        ids, mask = tokens.batch(model, rows, pad_left=True)
        step, logits, last = decoder(model, ids, mask, cached), [], None
        for i in range(3):
            logits.append(step(last).float().log_softmax(-1))
            last = logits[-1].argmax(-1, keepdim=True) if picks is None else picks[i]
        return torch.stack(logits)  # [steps, rows, vocab]

    def probe():
        prompt = kv.probe_ids(model, 4)
        rows = [prompt, prompt[1:]]
        plain = run(rows, cached=False)
        picks = plain.argmax(-1, keepdim=True)  # [steps, rows, 1]
        alone = torch.cat([run([r], False, picks[:, i : i + 1]) for i, r in enumerate(rows)], dim=1)
        return run(rows, True, picks), plain, alone

    return kv.verified(model, "cached generation", probe)
