"""``store-server run`` on the in-process bus, over two processes: the receiver in this one,
the router, indexer and scan-sheet service in a second, so that each side has a core.

In one process, one GIL held the receiver and the consumers together, and the embedded server
received and filed at the pace of the sum of their costs. Here the receiver's process starts
the consumers' process (``python -m services.embedded``, the settings on its standard input),
waits until its consumers are up, and publishes into its in-process bus over a socket pair
(:mod:`shared.bus.link`); a publish is confirmed once the message is queued there.

- Start-up: the data directory is claimed by this process and its lock is handed to the
  consumers' process too, so that no second server starts until both have ended.
- SIGTERM or SIGINT: the receiver stops first (the stores in flight finish), then the
  consumers work through what is queued, then both exit; the consumers' process ignores the
  signals (a terminal sends SIGINT to both) and follows this order.
- The consumers' process ends unexpectedly: publishes fail (the senders hear 0xA700, nothing
  is answered Success that no consumer will see), and this process stops and exits 1 for its
  supervisor to start it again; what was spooled is published again at the next start.
- This process ends unexpectedly: the consumers finish the batches in hand and exit at once;
  what was queued is still in the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Sequence

from services.app import EMBEDDED, claim_data_dir, redact, start
from services.receiver import Receiver
from services.settings import Settings
from shared.bus.link import LinkError, LinkPublisher, serve_link
from shared.db.reader import IndexReader
from shared.heartbeat import Heartbeat, beat_path
from shared.log import configure_logging, get_logger
from shared.privacy import private_umask, tighten
from shared.process import StartError

# By name: the consumers' process runs this module as __main__.
log = get_logger("services.embedded")

CONSUMERS = tuple(role for role in EMBEDDED if role != "receiver")
WAITING_NOTICE = 30.0  # seconds between the log's lines while the consumers start or stop


def split(settings: Settings) -> bool:
    """Whether ``store-server run`` runs the consumers in a process of their own."""
    return settings.bus.url.startswith("memory://") and settings.bus.memory_split


async def serve_split(settings: Settings) -> int:
    """Run the receiver here and the consumers in a second process until SIGTERM or SIGINT,
    or until the consumers' process ends; the exit code."""
    private_umask()  # before anything is created; the consumers' process inherits it
    lock = claim_data_dir(settings, EMBEDDED)
    assert lock is not None and lock.descriptor is not None
    configure_logging(settings.log_file, settings.log.level, accounts_root=settings.accounts_dir)
    tighten(settings.data_dir, settings.log_file)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    for directory in (settings.data_dir, settings.spool_dir, settings.quarantine_dir):
        directory.mkdir(parents=True, exist_ok=True)
    ours, theirs = socket.socketpair()
    consumers = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.embedded",
        str(theirs.fileno()),
        stdin=asyncio.subprocess.PIPE,
        pass_fds=(theirs.fileno(), lock.descriptor),
    )
    theirs.close()
    assert consumers.stdin is not None
    # A consumers' process that ended at once is told by the link (its start-up failed).
    with contextlib.suppress(ConnectionError):
        consumers.stdin.write(settings.model_dump_json().encode())
        await consumers.stdin.drain()
    consumers.stdin.close()
    link = LinkPublisher(*await asyncio.open_unix_connection(sock=ours))
    receiver: Receiver | None = None
    heartbeat: Heartbeat | None = None
    code = 0
    try:
        if not await _consumers_ready(link, stopping):
            raise _StoppedBeforeStart
        index = IndexReader(settings.query_database_url)
        receiver = Receiver(settings.receiver, settings.paths, link, index, settings.destinations)
        await receiver.start()

        def problem() -> str | None:
            return link.problem() or (receiver.problem() if receiver else "not started")

        heartbeat = Heartbeat(beat_path(settings.data_dir, "run", settings.instance), problem)
        await heartbeat.start()
        log.info(
            "process.started",
            roles=sorted(EMBEDDED),
            bus=redact(settings.bus.url),
            data_dir=str(settings.data_dir),
            consumers_pid=consumers.pid,
        )
        ended = asyncio.create_task(link.closed.wait())
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait((ended, stop), return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        stop.cancel()
        if link.closed.is_set():
            log.error("process.consumers_ended", pid=consumers.pid, reason=link.problem())
            code = 1
        log.info("process.stopping")
    except _StoppedBeforeStart:
        log.info("process.stopping")
    except (ConnectionError, StartError) as error:  # LinkError is a ConnectionError
        log.error("process.start_failed", error=str(error))
        code = 1
    finally:
        if heartbeat is not None:
            await heartbeat.stop()
        if receiver is not None:
            await receiver.stop()
        code = await _end(consumers, link) or code
        lock.release()
    log.info("process.stopped")
    return code


class _StoppedBeforeStart(Exception):
    """SIGTERM or SIGINT came while the consumers were still starting."""


async def _consumers_ready(link: LinkPublisher, stopping: asyncio.Event) -> bool:
    """Until the consumers' process has started its consumers (True) or this process is told
    to stop (False); LinkError when that process ends first. No deadline: opening the index
    may upgrade its schema, which takes as long as the index is large; meanwhile the log says
    every :data:`WAITING_NOTICE` seconds why the port is not open yet."""
    stop = asyncio.create_task(stopping.wait())
    waited = 0.0
    try:
        while True:
            ready = asyncio.create_task(link.ready(WAITING_NOTICE))
            await asyncio.wait((ready, stop), return_when=asyncio.FIRST_COMPLETED)
            if stop.done():
                ready.cancel()
                return False
            try:
                ready.result()
            except LinkError:
                if link.closed.is_set():
                    raise
                waited += WAITING_NOTICE
                log.info("process.waiting_for_consumers", seconds=waited)
            else:
                return True
    finally:
        stop.cancel()


async def _end(consumers: asyncio.subprocess.Process, link: LinkPublisher) -> int:
    """Ask the consumers' process to finish its queues and wait for it; 1 when it failed. It
    is not killed: its stop is bounded (30 s a service), and one still starting may be
    upgrading the index's schema, which must not be cut short; the log says why we wait."""
    with contextlib.suppress(ConnectionError, OSError):  # gone: its exit code tells how
        await link.stop()
    await link.close()
    waited = 0.0
    while True:
        try:
            returned = await asyncio.wait_for(consumers.wait(), WAITING_NOTICE)
        except TimeoutError:
            waited += WAITING_NOTICE
            log.info("process.waiting_for_consumers_to_stop", pid=consumers.pid, seconds=waited)
        else:
            break
    if returned != 0:
        log.error("process.consumers_failed", pid=consumers.pid, exit_code=returned)
        return 1
    return 0


async def consume(settings: Settings, link_descriptor: int) -> int:
    """The consumers' process: start them, publish what the receiver sends into their bus, and
    stop when it asks (working through the queues) or when it is gone (at once)."""
    configure_logging(settings.log_file, settings.log.level, accounts_root=settings.accounts_dir)
    reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=link_descriptor))
    try:
        running = await start(settings, CONSUMERS, index=True, heartbeat=False)
    except (ConnectionError, StartError) as error:
        log.error("process.start_failed", error=str(error))
        return 1
    orderly = await serve_link(reader, writer, running.bus)
    if not orderly:
        # The receiver's process is gone: what is queued is in the spool, published again at
        # the next start, which waits for this process to end (it holds the lock too).
        await running.bus.close()
    await running.stop()
    writer.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.embedded LINK_FD``, the settings as JSON on standard input."""
    [descriptor] = list(sys.argv[1:] if argv is None else argv)
    settings = Settings.model_validate_json(sys.stdin.buffer.read())
    # The receiver's process orders the stop; a terminal's Ctrl-C reaches both processes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return asyncio.run(consume(settings, int(descriptor)))


if __name__ == "__main__":
    sys.exit(main())
