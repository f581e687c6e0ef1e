"""How fast instances are received: DCMTK storescp as the reference, then our receiver.

One synthetic MR study is generated into a temporary folder and sent with DCMTK ``storescu``
to each target in turn, ``--repeat`` times, targets interleaved so drift hits all of them. A
run counts only if every storescu exits 0 and the receiver holds every instance afterwards;
otherwise the target is reported as failed with the reason. Everything (study, received files,
server processes, broker queues) is removed before exiting. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aio_pika
from generate import generate_study, split_study

HOST = "127.0.0.1"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
OUR_AE, REFERENCE_AE = "STORE_SERVER", "STORESCP"
# DCMTK waits for delayed ACKs (~40 ms per message) unless told to set TCP_NODELAY.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
STORESCP_MAX_PDU = "131072"  # storescp's largest; ours defaults to 256 KiB
READY_TIMEOUT, SEND_TIMEOUT, STOP_TIMEOUT = 60.0, 900.0, 60.0
# `run` is the embedded server whole (receiver, router and indexer share one process, one bus
# in memory and SQLite); `receiver` is the production receiver process alone, publishing to
# RabbitMQ, with the routers and indexers in processes of their own.
EMBEDDED, RECEIVER = "store-server run", "store-server receiver"
TARGETS = ("storescp", EMBEDDED, RECEIVER)
# shared.bus.base.TOPOLOGY's roles, copied so the bench does not load the project's bus code.
QUEUE_ROLES = ("router", "indexer", "scansheet")


@dataclass
class Run:
    seconds: float | None = None  # None: failed, see error
    error: str | None = None


@dataclass
class Result:
    target: str
    runs: list[Run] = field(default_factory=list)
    median_seconds: float | None = None
    instances_per_second: float | None = None
    mb_per_second: float | None = None
    ratio_to_storescp: float | None = None
    error: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def amqp_reachable() -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, 5672), timeout=2):
        return True
    return False


async def _delete_topology(exchange: str) -> None:
    connection = await aio_pika.connect(AMQP_URL, timeout=10)
    async with connection:
        channel = await connection.channel()
        for role in QUEUE_ROLES:
            for suffix in ("", ".retry", ".dead"):
                await channel.queue_delete(f"{exchange}.{role}{suffix}")
        await channel.exchange_delete(exchange)


def _stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM the process group (storescp --fork children too), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return -signal.SIGKILL


def _tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return " | ".join(text[-lines:])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    log: Path
    code: int | None = None  # exit code, once stopped


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], log: Path) -> Iterator[Server]:
    """Run a server in its own process group, stopped (and its ``code`` set) on leaving."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(process, log)
    try:
        yield server
    finally:
        server.code = _stop(process)


def wait_ready(server: Server, port: int, ae_title: str) -> None:
    """Until a C-ECHO succeeds: the port is open and the AE answers."""
    deadline = time.monotonic() + READY_TIMEOUT
    echo = ["echoscu", "-q", "-to", "2", "-aec", ae_title, HOST, str(port)]
    while subprocess.run(echo, env=DCMTK_ENV, capture_output=True).returncode != 0:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited {server.process.returncode}: {_tail(server.log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not answering C-ECHO after {READY_TIMEOUT:.0f}s")
        time.sleep(0.1)


def send(chunks: list[Path], port: int, ae_title: str, logs: Path) -> float:
    """One storescu per chunk, in parallel; seconds from the first start to the last exit."""
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    started = time.perf_counter()
    try:
        for index, chunk in enumerate(chunks):
            log = logs / f"storescu-{index}.log"
            # -R: propose only the SOP classes in the files, not ~120 unused contexts.
            command = ["storescu", "-aec", ae_title, "-R", "+sd", HOST, str(port), str(chunk)]
            with log.open("wb") as output:
                process = subprocess.Popen(
                    command, env=DCMTK_ENV, stdout=output, stderr=subprocess.STDOUT
                )
            processes.append((process, log))
        for process, _ in processes:
            process.wait(timeout=max(started + SEND_TIMEOUT - time.perf_counter(), 0.1))
        elapsed = time.perf_counter() - started
    finally:
        for process, _ in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, log in processes:
        if process.returncode != 0:
            raise RuntimeError(f"storescu exited {process.returncode}: {_tail(log)}")
        if "E: " in log.read_text(errors="replace"):
            raise RuntimeError(f"storescu reported errors: {_tail(log)}")
    return elapsed


def run_once(target: str, chunks: list[Path], expected: int, work: Path) -> Run:
    """One transfer of the whole study to a freshly started ``target``; cleans up after."""
    work.mkdir()
    port = free_port()
    exchange = ""
    try:
        if target == "storescp":
            received, pattern = work / "received", "*"
            received.mkdir()
            ae_title, env = REFERENCE_AE, DCMTK_ENV
            command = ["storescp", "--fork", "-aet", ae_title, "+xa", "-dhl"]
            command += ["-pdu", STORESCP_MAX_PDU, "--output-directory", str(received), str(port)]
        else:
            data_dir = work / "data"
            # Each instance is in the spool or, once the router has filed it, in accounts/.
            received, pattern = data_dir, "*.dcm"
            ae_title = OUR_AE
            # Only our flags and the exchange below: no STORE_SERVER_* from the caller's shell.
            env = {k: v for k, v in os.environ.items() if not k.startswith("STORE_SERVER_")}
            bus, role = "memory://", "run"
            if target == RECEIVER:
                bus, role, exchange = AMQP_URL, "receiver", f"bench-{uuid.uuid4().hex[:12]}"
                env["STORE_SERVER_BUS__EXCHANGE"] = exchange
            command = [str(Path(sys.executable).with_name("store-server")), role, "--host", HOST]
            command += ["--port", str(port), "--data-dir", str(data_dir), "--bus", bus]
        log = work / "server.log"
        try:
            with serving(command, env, log) as server:
                wait_ready(server, port, ae_title)
                seconds = send(chunks, port, ae_title, work)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            return Run(error=str(error))
        count = sum(1 for path in received.rglob(pattern) if path.is_file())
        if count != expected:
            return Run(error=f"{count} of {expected} instances stored")
        if target != "storescp" and server.code != 0:
            return Run(error=f"server exited {server.code} on SIGTERM: {_tail(log)}")
        return Run(seconds=seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if exchange:
            try:
                asyncio.run(_delete_topology(exchange))
            except Exception as error:  # the run's outcome stands; say what was left behind
                print(f"left behind: exchange {exchange}, its queues: {error}", file=sys.stderr)


def summarise(results: list[Result], count: int, total_bytes: int) -> None:
    for result in results:
        failures = [run.error for run in result.runs if run.error is not None]
        if failures:
            result.error = f"{len(failures)}/{len(result.runs)} runs failed: {failures[0]}"
            continue
        seconds = statistics.median(run.seconds for run in result.runs if run.seconds)
        result.median_seconds = seconds
        result.instances_per_second = count / seconds
        result.mb_per_second = total_bytes / seconds / 1e6
    reference = results[0].instances_per_second
    for result in results:
        if reference and result.instances_per_second:
            result.ratio_to_storescp = result.instances_per_second / reference


def table(results: list[Result]) -> str:
    rows = [("target", "instances/s", "MB/s", "vs storescp", "")]
    for r in results:
        if r.instances_per_second is None or r.mb_per_second is None:
            rows.append((r.target, "FAILED", "-", "-", r.error or ""))
            continue
        ratio = f"{r.ratio_to_storescp:.2f}x" if r.ratio_to_storescp else "-"
        rate, mbps = f"{r.instances_per_second:.0f}", f"{r.mb_per_second:.1f}"
        rows.append((r.target, rate, mbps, ratio, ""))
    width = max(len(row[0]) for row in rows)
    return "\n".join(
        f"{t:<{width}}  {rate:>11}  {mbps:>7}  {ratio:>11}  {why}".rstrip()
        for t, rate, mbps, ratio, why in rows
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1000, help="slices in the study")
    parser.add_argument("--size", type=int, default=256, help="rows = columns of each slice")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target (median)")
    parser.add_argument("--associations", type=int, default=1, help="parallel storescu")
    parser.add_argument("--no-amqp", action="store_true", help="skip the RabbitMQ target")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if min(args.count, args.size, args.repeat, args.associations) < 1:
        parser.error("--count, --size, --repeat and --associations must be at least 1")
    if args.associations > args.count:
        parser.error("--associations cannot exceed --count")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop servers and remove files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    missing = [tool for tool in ("storescu", "storescp", "echoscu") if not shutil.which(tool)]
    if missing:
        print(f"missing DCMTK tools: {', '.join(missing)}", file=sys.stderr)
        return 2
    targets = list(TARGETS)
    if args.no_amqp or not amqp_reachable():
        targets.pop()
        if not args.no_amqp:
            print(f"RabbitMQ not reachable at {HOST}:5672: skipping amqp", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="store-server-bench-") as temp:
        root = Path(temp)
        print(f"generating {args.count} slices of {args.size}x{args.size}", file=sys.stderr)
        paths = generate_study(root / "study", args.count, args.size)
        total_bytes = sum(path.stat().st_size for path in paths)
        chunks = split_study(paths, args.associations, root / "associations")
        results = [Result(target) for target in targets]
        for repetition in range(args.repeat):
            for number, result in enumerate(results):
                work = root / f"run-{repetition}-{number}"
                run = run_once(result.target, chunks, len(paths), work)
                result.runs.append(run)
                shown = f"{run.seconds:.2f}s" if run.seconds is not None else run.error
                print(f"[{repetition + 1}/{args.repeat}] {result.target}: {shown}", file=sys.stderr)
    summarise(results, args.count, total_bytes)
    heading = f"{args.count} x {args.size}x{args.size} MR slices ({total_bytes / 1e6:.1f} MB), "
    heading += f"{args.associations} association(s), median of {args.repeat}"
    # With --json, stdout carries only the JSON; the table still goes to the terminal.
    print(f"{heading}\n{table(results)}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        payload = {**vars(args), "bytes": total_bytes, "results": [asdict(r) for r in results]}
        print(json.dumps(payload, indent=2))
    return 0 if all(result.error is None for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
