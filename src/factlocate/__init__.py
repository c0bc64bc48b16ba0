"""factlocate: find where a language model stores a fact, and rewrite it.

Data flow: model -> trace or edit -> result objects -> metrics or plots.
"""
from factlocate.deltas import WeightDelta
from factlocate.errors import FactlocateError
from factlocate.generate import generate
from factlocate.models import DEFAULT_MODEL, load_model
from factlocate.predict import predict
from factlocate.tracing import TraceResult, trace, trace_kinds

__all__ = [
    "DEFAULT_MODEL",
    "FactlocateError",
    "TraceResult",
    "WeightDelta",
    "generate",
    "load_model",
    "predict",
    "trace",
    "trace_kinds",
]
__version__ = "0.1.0"
