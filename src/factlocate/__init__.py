"""factlocate: find where a language model stores a fact, and rewrite it.

Data flow: model -> trace or edit -> result objects -> metrics or plots.
"""
from factlocate.deltas import WeightDelta
from factlocate.errors import FactlocateError
from factlocate.models import DEFAULT_MODEL, load_model
from factlocate.predict import predict

__all__ = ["DEFAULT_MODEL", "FactlocateError", "WeightDelta", "load_model", "predict"]
__version__ = "0.1.0"
