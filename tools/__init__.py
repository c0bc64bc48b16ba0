"""Developer tools: benchmarks (`make bench`), the notebook runner (`make notebooks`) and the one-off
analyses behind the notes (`python -m tools.<name>`). Not installed.

What the analyses share: the command line that made a result (saved beside it), and an entry point that
turns bad input into one line on stderr instead of a traceback.
"""
from __future__ import annotations

import sys


def command(name: str, argv=None) -> str:
    """`python -m tools.<name> ARGS`: the command line of this run, as saved with its results."""
    return f"python -m tools.{name} " + " ".join(sys.argv[1:] if argv is None else argv)


def run(name: str, main) -> None:
    """Exit with `main()`'s status; a FactlocateError (bad input) is one line on stderr and status 2."""
    from factlocate.errors import FactlocateError

    try:
        raise SystemExit(main())
    except FactlocateError as e:
        print(f"{name}: {e}", file=sys.stderr)
        raise SystemExit(2)
