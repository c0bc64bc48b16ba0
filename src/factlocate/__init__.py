"""factlocate: find where a language model stores a fact, and rewrite it.

Data flow: model -> trace or edit -> result objects -> metrics or plots.

* `load_model` (`models`) gives a TransformerBridge with raw HF weights and an identity (`identity`);
* `forward` runs part of a forward pass, captures activations and reuses KV caches (checked);
* `tracing` locates a fact (`trace`, `trace_kinds` -> `TraceResult`);
* `editors` rewrite it (`compute_edit` -> `EditResult` of `WeightDelta`s);
* `metrics`, `evaluation` and `plots` turn results into numbers and figures.
"""
from factlocate.deltas import WeightDelta
from factlocate.errors import FactlocateError
from factlocate.generate import generate
from factlocate.models import DEFAULT_MODEL, load_model
from factlocate.predict import predict
from factlocate.tracing import GridSpec, RunSpec, TraceResult, trace, trace_kinds

__all__ = [
    "DEFAULT_MODEL",
    "FactlocateError",
    "GridSpec",
    "RunSpec",
    "TraceResult",
    "WeightDelta",
    "generate",
    "load_model",
    "predict",
    "trace",
    "trace_kinds",
]
__version__ = "0.1.0"
