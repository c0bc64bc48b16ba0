"""Sequential editing (the AlphaEdit protocol): N edits in batches of B, each on the weights the earlier
ones left, with damage curves after each logged batch.

    protocol   `run` (resumable), `SequentialParams`, `eligible` (records outside `leave_out`), `select`
    state      `state.safetensors`: accumulated deltas and the editor's State; `final_weights`, `final_deltas`
    report     `write_report`, `load_runs`, `trajectory` (the curves' figure is `factlocate.plots.sequential`)

The names below are this package's public face; each lives in the module named above.
"""
from factlocate.evaluation.sequential.protocol import SequentialParams, eligible, run, select
from factlocate.evaluation.sequential.report import load_runs, trajectory, write_report
from factlocate.evaluation.sequential.state import final_deltas, final_weights, restore

__all__ = ["SequentialParams", "eligible", "final_deltas", "final_weights", "load_runs", "restore", "run", "select",
           "trajectory", "write_report"]
