"""User-facing errors.

Anything raised as `FactlocateError` is a problem with the user's input or
environment. The CLI prints its message on one line and exits with status 2;
the Python API lets it propagate so notebooks show the message.
"""


class FactlocateError(Exception):
    """A clear, actionable error about input or environment (never a bug)."""
