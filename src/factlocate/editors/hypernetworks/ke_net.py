"""Knowledge Editor's hypernetwork (De Cao et al. 2021), following `algs/efk.py` of the reference
(itself adapted from nicola-decao/KnowledgeEditor).

A conditioning network reads the edit's tokens: the model's token embeddings, a one-layer bidirectional
LSTM (the last states of both directions), and a tanh feed-forward layer give a condition vector c. For
every edited matrix M [d_in, d_out], a small network of c (weight-normalised linear, tanh, weight-normalised
linear) gives vectors a_row, a_col, b_row, b_col and a scalar η, and the update rescales and shifts the
fine-tuning gradient ∇M of the edit:

    A = softmax(a_row) ⊗ a_col,  B = softmax(b_row) ⊗ b_col
    ΔM = max_scale · sigmoid(η) · (∇M ⊙ A + B)

Choices: the token embeddings are the model's own and stay frozen (the reference trains a copy; a frozen
copy keeps Gemma's 262k-row table out of the optimiser); the constraint is the reference's fixed weighting
of the edit loss and the locality KL (`cedit`, `cloc`), not the original paper's Lagrangian.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import weight_norm

from factlocate.editors.hypernetworks.hypernet import softmax_rank1


class Conditioner(nn.Module):
    """Token embeddings (frozen) -> BiLSTM -> tanh feed-forward: the condition vector of one edit."""

    def __init__(self, embedding: torch.Tensor, hidden: int, out: int):
        super().__init__()
        self.register_buffer("embedding", embedding.detach().float().clone(), persistent=False)
        self.lstm = nn.LSTM(embedding.shape[1], hidden, num_layers=1, bidirectional=True, batch_first=True)
        self.proj = nn.Linear(2 * hidden, out)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(self.embedding[ids][None])
        return torch.tanh(self.proj(torch.cat([h[0, 0], h[1, 0]], -1)))


class ConditionedMatrix(nn.Module):
    """c -> (A, B, η) for one [d_in, d_out] matrix."""

    def __init__(self, d_in: int, d_out: int, condition: int, hidden: int):
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        self.net = nn.Sequential(weight_norm(nn.Linear(condition, hidden)), nn.Tanh(),
                                 weight_norm(nn.Linear(hidden, 2 * (d_in + d_out) + 1)))

    def factors(self, c: torch.Tensor, max_scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(A, B, scale) for condition c: the update is scale · (∇M ⊙ A + B)."""
        a_row, a_col, b_row, b_col, eta = self.net(c).split([self.d_in, self.d_out, self.d_in, self.d_out, 1])
        return softmax_rank1(a_row, a_col), softmax_rank1(b_row, b_col), max_scale * torch.sigmoid(eta)

    def forward(self, c: torch.Tensor, grad: torch.Tensor, max_scale: float) -> torch.Tensor:
        a, b, scale = self.factors(c, max_scale)
        return scale * (grad * a + b)


class KeNet(nn.Module):
    """The conditioner and one conditioned network per edited matrix."""

    def __init__(self, inners, embedding: torch.Tensor, hidden: int = 128, lstm_hidden: int = 256,
                 condition: int = 1024, max_scale: float = 1.0):
        super().__init__()
        self.names = [i.name for i in inners]
        self.max_scale = max_scale
        self.condition = Conditioner(embedding, lstm_hidden, condition)
        self.matrices = nn.ModuleList([ConditionedMatrix(i.d_in, i.d_out, condition, hidden) for i in inners])

    def forward(self, edit_ids: torch.Tensor, grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{name: ΔM [d_in, d_out]} from the edit's token ids and each matrix's gradient."""
        c = self.condition(edit_ids)
        return {n: m(c, grads[n], self.max_scale) for n, m in zip(self.names, self.matrices)}
