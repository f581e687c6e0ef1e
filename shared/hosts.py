"""Host names in the URLs of the database and the broker.

A connection is retried for a while at start-up, which helps a database or broker that is
starting, not a misspelt name: a name that does not exist is said at once instead.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def check_host_name(setting: str, url: str) -> None:
    """``ConnectionError`` naming ``setting`` when the host of ``url`` does not exist; a
    resolver that does not answer is left to the connection's retries."""
    host = urlsplit(url).hostname
    if not host:  # sqlite:///, memory://, a local socket
        return
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror as error:
        if error.errno == socket.EAI_NONAME:
            raise ConnectionError(f"{setting}: unknown host {host!r} ({error.strerror})") from None
