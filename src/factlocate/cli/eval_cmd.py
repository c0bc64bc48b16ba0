"""`factlocate eval` sub-commands (filled in by their feature)."""


def register(sub) -> None:
    pass
