"""Capture: keep the activations of named hook points during a forward pass.

    cap = Capture([arch.hook_mlp_key(5), arch.hook_mlp_value(5)])
    control.run(model, ids, hooks=cap.hooks, stop_at=6)
    keys, values = cap[arch.hook_mlp_key(5)], cap[arch.hook_mlp_value(5)]

The one way factlocate reads activations: tracing records its clean and
corrupted passes with it, the editors read keys, values and residuals with it,
and key statistics accumulate from it. `clone=True` copies each activation, for
hooks later in the same pass that write into the tensor in place. A capture
whose point fires more than once keeps the last value.
"""
from __future__ import annotations

import torch


class Capture:
    def __init__(self, names, clone: bool = False, detach: bool = True):
        self.names = list(dict.fromkeys(names))
        self.clone, self.detach = clone, detach
        self.values: dict[str, torch.Tensor] = {}

    def _keep(self, name: str):
        def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
            value = act.detach() if self.detach else act
            self.values[name] = value.clone() if self.clone else value
            return act
        return hook

    @property
    def hooks(self) -> list[tuple[str, object]]:
        """(hook name, function) pairs for `model.hooks` / `control.run`."""
        return [(name, self._keep(name)) for name in self.names]

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.values:
            raise KeyError(f"{name} was not reached by the forward pass")
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values
