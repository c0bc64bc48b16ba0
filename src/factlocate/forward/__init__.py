"""Forward control, activation capture and key/value reuse: how factlocate runs a model.

* `control`: run blocks a..b on the rows that need them, inject a residual, stop early,
  unembed only the positions a loss reads (`run`, `Inject`, `unembed`, `logits_at`);
* `capture`: keep activations of hook points (`Capture`);
* `kv`: Hugging Face KV caches through the public API, and the once-per-model checks
  that a reuse matches the full forward before any number from it is returned.
"""
from factlocate.forward.capture import Capture
from factlocate.forward.control import Inject, StopForward, logits_at, run, unembed

__all__ = ["Capture", "Inject", "StopForward", "logits_at", "run", "unembed"]
