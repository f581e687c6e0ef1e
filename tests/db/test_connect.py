"""Reaching the index: the configured connect timeout is the whole wait, even when the server
accepts the connection and never answers."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from shared.db.engine import open_index


async def test_a_server_that_never_answers_is_given_up_on_at_the_connect_timeout() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"postgresql://nobody@127.0.0.1:{silent.getsockname()[1]}/none"
    started = time.monotonic()
    try:
        with pytest.raises(ConnectionError, match="cannot reach the database within 2s"):
            await asyncio.wait_for(open_index(url, 2), 30)
    finally:
        silent.close()
    assert time.monotonic() - started < 5
