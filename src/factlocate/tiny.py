"""Tiny random models of every supported architecture, built locally.

Tests and examples use them where a real model is not needed: they load in a
fraction of a second and exercise exactly the code paths a hub model would.
The tokenizer is a byte-level BPE trained on the shipped known-facts prompts,
so subjects and answers tokenise into a few real sub-words.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

ARCHITECTURES = ("gpt2", "gptj", "llama", "gemma3")


def _training_texts() -> list[str]:
    with resources.files("factlocate.data").joinpath("known_1000.json").open() as f:
        facts = json.load(f)
    return [f"{r['prompt']} {r['attribute']}." for r in facts]


def build_tokenizer(vocab_size: int = 800):
    """A GPT-2-style byte-level BPE tokenizer, trained in memory on known facts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_texts(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


def build_config(arch: str, vocab_size: int, n_layers: int = 4, d_model: int = 64):
    """A small transformers config of the given architecture."""
    import transformers as tf

    common = dict(vocab_size=vocab_size, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    if arch == "gpt2":
        return tf.GPT2Config(n_layer=n_layers, n_embd=d_model, n_head=4, n_positions=128, **common)
    if arch == "gptj":
        return tf.GPTJConfig(
            n_layer=n_layers, n_embd=d_model, n_head=4, n_positions=128, rotary_dim=8, **common
        )
    if arch == "llama":
        return tf.LlamaConfig(
            num_hidden_layers=n_layers, hidden_size=d_model, intermediate_size=4 * d_model,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
            tie_word_embeddings=True, **common,
        )
    if arch == "gemma3":
        return tf.Gemma3TextConfig(
            num_hidden_layers=n_layers, hidden_size=d_model, intermediate_size=4 * d_model,
            num_attention_heads=4, num_key_value_heads=1, head_dim=16,
            max_position_embeddings=128, sliding_window=16, **common,
        )
    raise ValueError(f"unknown tiny architecture {arch!r}; choose from {ARCHITECTURES}")


def build_tiny_model(arch: str, folder: str | Path, seed: int = 0, n_layers: int = 4) -> Path:
    """Write a random-weight model of `arch` and its tokenizer to `folder` (a HF folder)."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    tokenizer = build_tokenizer()
    config = build_config(arch, len(tokenizer), n_layers=n_layers)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    # Larger-than-default init so the random model has peaked next-token distributions.
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.15)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
