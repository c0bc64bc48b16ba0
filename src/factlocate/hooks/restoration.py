"""Restore activations: copy known values into chosen (row, position) slots.

All are plain TransformerLens hooks `fn(activation, hook) -> activation`:

* `RestoreFromRow0(positions)`: the original `h[1:, t] = h[0, t]`, restoring
  corrupted rows from the clean row 0 of the same batch (the naive engine).
* `HoldFromCapture(capture, name, positions)`: `h[1:, t] = first_pass[1:, t]`, holding
  a module's output at the value an earlier pass captured (the naive engine's severed
  paths, as the original `trace_with_repatch`).
* `WriteAt(rows, positions, values)`: `h[rows[i], positions[i]] = values[i]`,
  one index-assignment for many rows at once (the batched engine, which keeps
  clean and corrupted activations cached and patches each row differently).

`Replace`, `Append` and `Chain` let the batched engine inject cached residuals,
add rows to a batch partway up the model, and stack several hooks on one point.
"""
from __future__ import annotations

import torch
from jaxtyping import Float, Int


class RestoreFromRow0:
    """`h[1:, t] = h[0, t]` for each t in `positions`."""

    def __init__(self, positions: list[int]):
        self.positions = list(positions)

    def __call__(self, h: Float[torch.Tensor, "batch pos d"], hook=None) -> torch.Tensor:
        for t in self.positions:
            h[1:, t] = h[0, t]
        return h


class HoldFromCapture:
    """`h[1:, t] = captured[1:, t]` for each t in `positions` (`captured` from an earlier pass)."""

    def __init__(self, capture, name: str, positions: list[int]):
        self.capture, self.name, self.positions = capture, name, list(positions)

    def __call__(self, h: Float[torch.Tensor, "batch pos d"], hook=None) -> torch.Tensor:
        value = self.capture[self.name]
        for t in self.positions:
            h[1:, t] = value[1:, t].to(h.device, h.dtype)
        return h


class WriteAt:
    """`h[rows[i], positions[i]] = values[i]` in one assignment."""

    def __init__(self, rows: Int[torch.Tensor, "n"], positions: Int[torch.Tensor, "n"],
                 values: Float[torch.Tensor, "n d"]):
        self.rows, self.positions, self.values = rows, positions, values

    def __call__(self, h: Float[torch.Tensor, "batch pos d"], hook=None) -> torch.Tensor:
        h[self.rows.to(h.device), self.positions.to(h.device)] = self.values.to(h.device, h.dtype)
        return h


class Replace:
    """Replace the whole activation by `value` (injecting a cached residual)."""

    def __init__(self, value: Float[torch.Tensor, "batch pos d"]):
        self.value = value

    def __call__(self, h: torch.Tensor, hook=None) -> torch.Tensor:
        return self.value.to(h.device, h.dtype).clone()


class Append:
    """Add rows `value` at the end of the batch (rows joining a forward pass at this hook)."""

    def __init__(self, value: Float[torch.Tensor, "rows pos d"]):
        self.value = value

    def __call__(self, h: Float[torch.Tensor, "batch pos d"], hook=None) -> torch.Tensor:
        return torch.cat([h, self.value.to(h.device, h.dtype)])


class Chain:
    """Run several hooks on one hook point, in order."""

    def __init__(self, *fns):
        self.fns = fns

    def __call__(self, h: torch.Tensor, hook=None) -> torch.Tensor:
        for fn in self.fns:
            h = fn(h, hook)
        return h
