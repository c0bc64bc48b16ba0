"""Benchmarks (`make bench`): each section module has `run() -> str` (a markdown table)."""
