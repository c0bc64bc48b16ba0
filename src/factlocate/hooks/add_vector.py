"""A hook that adds one vector at given (row, position) pairs of an activation.

    delta = torch.zeros(d_model, requires_grad=True)
    hook = AddVector(delta, rows=[0, 1], positions=[4, 7])
    model.run_with_hooks(ids, fwd_hooks=[(arch.hook_mlp_value(layer), hook)])

`hook.first` keeps the activation at (rows[0], positions[0]) from the first
call, before the vector was added (ROME's v_init).
"""
from __future__ import annotations

import torch
from jaxtyping import Float


class AddVector:
    def __init__(self, vector: Float[torch.Tensor, "d"], rows, positions):
        self.vector = vector
        self.rows = torch.as_tensor(rows, dtype=torch.long)
        self.positions = torch.as_tensor(positions, dtype=torch.long)
        self.first: torch.Tensor | None = None

    def __call__(self, act: Float[torch.Tensor, "batch pos d"], hook=None) -> torch.Tensor:
        rows, pos = self.rows.to(act.device), self.positions.to(act.device)
        if self.first is None:
            self.first = act[rows[0], pos[0]].detach().clone()
        add = torch.zeros_like(act)
        add[rows, pos] = self.vector.to(act.dtype)
        return act + add


class AddVectors:
    """Many requests' vectors at once: row r of the batch gets `vectors[owner[r]]` at `positions[r]`.

    `rows` (set per forward) says which rows of the full set the activation holds, in order,
    and `shift` how many leading positions the forward skipped (it runs positions shift..).
    `first[i]` keeps request i's activation at its first row's position, from the first call
    that holds that row, before anything is added (its v_init).
    """

    def __init__(self, vectors: list[torch.Tensor], owner, positions):
        self.vectors = vectors
        self.owner = torch.as_tensor(owner, dtype=torch.long)
        self.positions = torch.as_tensor(positions, dtype=torch.long)
        self.rows = torch.arange(len(self.owner))
        self.shift = 0
        self.first_rows = {}
        for r, i in enumerate(self.owner.tolist()):
            self.first_rows.setdefault(i, r)
        self.first: list[torch.Tensor | None] = [None] * len(vectors)

    def __call__(self, act: Float[torch.Tensor, "batch pos d"], hook=None) -> torch.Tensor:
        rows = torch.as_tensor(self.rows, dtype=torch.long)
        owner, pos = self.owner[rows].to(act.device), (self.positions[rows] - self.shift).to(act.device)
        local = torch.arange(len(rows), device=act.device)
        for r, g in enumerate(rows.tolist()):
            i = int(owner[r])
            if self.first[i] is None and self.first_rows[i] == g:
                self.first[i] = act[r, pos[r]].detach().clone()
        add = torch.zeros_like(act)
        add[local, pos] = torch.stack(self.vectors).to(act.dtype)[owner]
        return act + add
