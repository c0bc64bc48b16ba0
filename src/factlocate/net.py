"""Is a host reachable? One check for the model hub and the data downloads.

FACTLOCATE_OFFLINE=1 or HF_HUB_OFFLINE=1 makes every host unreachable without
trying, so offline runs fail fast and tests never touch the network.
"""
from __future__ import annotations

import os
import socket
from urllib.parse import urlparse


def offline() -> bool:
    return os.environ.get("FACTLOCATE_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether the URL's host accepts a TCP connection (no request is made)."""
    if offline():
        return False
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_url() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")
