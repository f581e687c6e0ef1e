"""How fast instances are received: ours against Orthanc and DCMTK storescp, in one run.

Synthetic studies (MR 1000 x 256^2 and CT 500 x 512^2 by default) are sent with DCMTK
``storescu`` over one association and over several, to each target in turn, ``--repeat``
times, targets interleaved so drift hits all of them. A run counts only if every storescu
exits 0 and the receiver holds every instance afterwards; otherwise the target is reported as
failed with the reason. Reported per study and association count: instances/s, the
receiver's CPU milliseconds per instance and its peak memory, and the rate as a ratio to
Orthanc's and to storescp's. CPU is counted from the moment the target answers its first
C-ECHO (start-up left out) to its exit. Everything (studies, received files, server
processes, broker queues, databases) is removed before exiting. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chart import draw_chart
from generate import generate_study, split_study
from targets import (
    ALL,
    CONSUMERS,
    DCMTK_ENV,
    EMBEDDED,
    HOST,
    ORTHANC,
    RECEIVER,
    STORESCP,
    children,
    cpu_seconds,
    measure_children,
    services_cpu,
    started,
    stored,
    wait_indexed,
)

READY_TIMEOUT, SEND_TIMEOUT = 60.0, 900.0


@dataclass
class Run:
    seconds: float | None = None  # None: failed, see error
    # Until the last instance is filed and indexed: Orthanc does both before it answers,
    # storescp neither (its figure is the send's); ours measured.
    end_to_end_seconds: float | None = None
    cpu_ms_per_instance: float | None = None  # the receiving process
    pipeline_cpu_ms_per_instance: float | None = None  # every process of the target
    peak_mb: float | None = None  # the receiving process
    peaks_mb: dict[str, float] = field(default_factory=dict)  # every process of the target
    cpu_ms_by_process: dict[str, float] = field(default_factory=dict)
    services_cpu_ms: dict[str, float] = field(default_factory=dict)  # RabbitMQ, PostgreSQL
    error: str | None = None


@dataclass
class Result:
    study: str
    associations: int
    target: str
    runs: list[Run] = field(default_factory=list)
    instances_per_second: float | None = None
    end_to_end_per_second: float | None = None
    cpu_ms_per_instance: float | None = None
    pipeline_cpu_ms_per_instance: float | None = None
    peak_mb: float | None = None
    peaks_mb: dict[str, float] = field(default_factory=dict)
    services_cpu_ms_per_instance: float | None = None
    ratio_to_orthanc: float | None = None
    ratio_to_storescp: float | None = None
    end_to_end_ratio_to_orthanc: float | None = None
    error: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def amqp_reachable() -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, 5672), timeout=2):
        return True
    return False


def _tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return " | ".join(text[-lines:])


def wait_ready(process: subprocess.Popen[bytes], log: Path, port: int, ae_title: str) -> None:
    """Until a C-ECHO succeeds: the port is open and the AE answers."""
    deadline = time.monotonic() + READY_TIMEOUT
    echo = ["echoscu", "-q", "-to", "2", "-aec", ae_title, HOST, str(port)]
    while subprocess.run(echo, env=DCMTK_ENV, capture_output=True).returncode != 0:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}: {_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not answering C-ECHO after {READY_TIMEOUT:.0f}s")
        time.sleep(0.1)


def send(chunks: list[Path], port: int, ae_title: str, logs: Path) -> float:
    """One storescu per chunk, in parallel; seconds from the first start to the last exit."""
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    started_at = time.perf_counter()
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
            process.wait(timeout=max(started_at + SEND_TIMEOUT - time.perf_counter(), 0.1))
        elapsed = time.perf_counter() - started_at
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
    try:
        try:
            with started(target, free_port(), work) as running:
                wait_ready(running.process, running.log, running.port, running.ae_title)
                pids = {"receiver": running.process.pid}
                pids |= {name: p.pid for name, p in running.helpers.items()}
                idle = {name: cpu_seconds(pid) for name, pid in pids.items()}
                services_before = services_cpu() if target in (RECEIVER, CONSUMERS) else {}
                # store-server run's consumers' process, counted on its own (not as idle CPU);
                # other targets' children (storescp's forks) are in their parent's figure.
                if target == EMBEDDED:
                    for number, pid in enumerate(children(running.process.pid)):
                        idle[f"consumers-{number}" if number else "consumers"] = cpu_seconds(pid)
                began = time.perf_counter()
                seconds = send(chunks, running.port, running.ae_title, work)
                end_to_end = seconds
                if running.index_url is not None:
                    wait_indexed(running, expected, SEND_TIMEOUT)
                    end_to_end = time.perf_counter() - began
                    if target == EMBEDDED:
                        measure_children(running)
                services_spent = {
                    name: round((used - services_before[name]) * 1000 / expected, 2)
                    for name, used in services_cpu().items()
                    if name in services_before
                }
            # Counted once stopped: a file being filed is in the spool and the accounts at once.
            count = stored(running)
        except (RuntimeError, subprocess.TimeoutExpired, subprocess.CalledProcessError) as error:
            return Run(error=str(error))
        assert running.usage is not None
        usages = {"receiver": running.usage, **running.helper_usage}
        if count != expected:
            return Run(error=f"{count} of {expected} instances stored")
        if target not in (STORESCP, ORTHANC):
            failed = {name: u.code for name, u in usages.items() if u.code != 0}
            if failed:
                return Run(error=f"exited on SIGTERM with {failed}: {_tail(running.log)}")
        cpu_ms = {
            name: (u.cpu_seconds - idle[name]) * 1000 / expected for name, u in usages.items()
        }
        return Run(
            seconds,
            end_to_end,
            cpu_ms["receiver"],
            sum(cpu_ms.values()),
            running.usage.peak_mb,
            {name: round(u.peak_mb, 1) for name, u in usages.items()},
            {name: round(ms, 2) for name, ms in cpu_ms.items()},
            services_spent,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summarise(results: list[Result], count: int) -> None:
    for result in results:
        failures = [run.error for run in result.runs if run.error is not None]
        if failures:
            result.error = f"{len(failures)}/{len(result.runs)} runs failed: {failures[0]}"
            continue
        runs = result.runs
        result.instances_per_second = count / statistics.median(
            r.seconds for r in runs if r.seconds
        )
        result.end_to_end_per_second = count / statistics.median(
            r.end_to_end_seconds for r in runs if r.end_to_end_seconds
        )
        result.cpu_ms_per_instance = statistics.median(
            r.cpu_ms_per_instance for r in runs if r.cpu_ms_per_instance is not None
        )
        result.pipeline_cpu_ms_per_instance = statistics.median(
            r.pipeline_cpu_ms_per_instance
            for r in runs
            if r.pipeline_cpu_ms_per_instance is not None
        )
        if any(r.services_cpu_ms for r in runs):
            result.services_cpu_ms_per_instance = statistics.median(
                sum(r.services_cpu_ms.values()) for r in runs
            )
        result.peak_mb = max(r.peak_mb for r in runs if r.peak_mb is not None)
        for run in runs:
            for name, peak in run.peaks_mb.items():
                result.peaks_mb[name] = max(peak, result.peaks_mb.get(name, 0.0))
    by_target = {r.target: r for r in results if r.error is None}
    orthanc, storescp = by_target.get(ORTHANC), by_target.get(STORESCP)
    for result in by_target.values():
        rate, end_to_end = result.instances_per_second, result.end_to_end_per_second
        if rate and orthanc and orthanc.instances_per_second:
            result.ratio_to_orthanc = rate / orthanc.instances_per_second
        if end_to_end and orthanc and orthanc.end_to_end_per_second:
            result.end_to_end_ratio_to_orthanc = end_to_end / orthanc.end_to_end_per_second
        if rate and storescp and storescp.instances_per_second:
            result.ratio_to_storescp = rate / storescp.instances_per_second


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value else "-"


def table(results: list[Result]) -> str:
    rows = [
        (
            "target",
            "inst/s",
            "e2e/s",
            "CPU ms/inst",
            "all CPU ms",
            "+RMQ/PG ms",
            "peak MB",
            "vs Orthanc",
            "e2e vs Orthanc",
            "vs storescp",
            "",
        )
    ]
    for r in results:
        if r.instances_per_second is None:
            rows.append((r.target, "FAILED", *("-",) * 8, r.error or ""))
            continue
        rows.append(
            (
                r.target,
                f"{r.instances_per_second:.0f}",
                f"{r.end_to_end_per_second:.0f}" if r.end_to_end_per_second else "-",
                f"{r.cpu_ms_per_instance:.2f}",
                f"{r.pipeline_cpu_ms_per_instance:.2f}",
                f"{r.services_cpu_ms_per_instance:.2f}" if r.services_cpu_ms_per_instance else "-",
                f"{max(r.peaks_mb.values(), default=r.peak_mb or 0):.0f}",
                _ratio(r.ratio_to_orthanc),
                _ratio(r.end_to_end_ratio_to_orthanc),
                _ratio(r.ratio_to_storescp),
                "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(widths[i]) if i in (0, len(row) - 1) else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--studies",
        default="MR:1000:256,CT:500:512",
        help="MODALITY:COUNT:SIZE,... (default: %(default)s)",
    )
    parser.add_argument("--associations", default="1,4", help="storescu in parallel: 1,4")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target (median)")
    parser.add_argument("--targets", default=",".join(ALL), help="of: " + ", ".join(ALL))
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--save", type=Path, help="also write the result as JSON to this file")
    parser.add_argument("--chart", type=Path, help="draw the rates as a PNG bar chart here")
    args = parser.parse_args(argv)
    try:
        args.studies = [
            (modality, int(count), int(size))
            for modality, count, size in (part.split(":") for part in args.studies.split(","))
        ]
        args.associations = [int(part) for part in args.associations.split(",")]
    except ValueError:
        parser.error("--studies is MODALITY:COUNT:SIZE,...; --associations is N,...")
    args.targets = [t for t in args.targets.split(",") if t]
    if unknown := set(args.targets) - set(ALL):
        parser.error(f"unknown targets: {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop servers and remove files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    tools = ["storescu", "echoscu", *(["storescp"] if STORESCP in args.targets else [])]
    tools += ["Orthanc"] if ORTHANC in args.targets else []
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        print(f"missing tools: {', '.join(missing)}", file=sys.stderr)
        return 2
    targets = args.targets
    if not amqp_reachable():
        print(
            f"RabbitMQ not reachable at {HOST}:5672: only storescp, orthanc, run", file=sys.stderr
        )
        targets = [t for t in targets if t in (STORESCP, ORTHANC, "run")]
    everything: list[Result] = []
    report: list[str] = []
    with tempfile.TemporaryDirectory(prefix="store-server-bench-") as temp:
        root = Path(temp)
        for modality, count, size in args.studies:
            print(f"generating {count} {modality} slices of {size}x{size}", file=sys.stderr)
            folder = root / f"{modality}-{count}-{size}"
            paths = generate_study(folder / "study", count, size, modality)
            total = sum(path.stat().st_size for path in paths)
            for associations in args.associations:
                chunks = split_study(paths, associations, folder / f"by-{associations}")
                results = [Result(modality, associations, target) for target in targets]
                for repetition in range(args.repeat):
                    for number, result in enumerate(results):
                        work = root / f"run-{modality}-{associations}-{repetition}-{number}"
                        run = run_once(result.target, chunks, len(paths), work)
                        result.runs.append(run)
                        shown = f"{run.seconds:.2f}s" if run.seconds is not None else run.error
                        print(
                            f"[{modality} x{associations} {repetition + 1}/{args.repeat}] "
                            f"{result.target}: {shown}",
                            file=sys.stderr,
                        )
                summarise(results, count)
                everything += results
                report.append(
                    f"{modality} {count} x {size}^2 ({total / 1e6:.0f} MB), "
                    f"{associations} association(s), median of {args.repeat}\n{table(results)}"
                )
    print("\n\n".join(report), file=sys.stderr if args.json else sys.stdout)
    payload = {"repeat": args.repeat, "results": [asdict(r) for r in everything]}
    if args.json:
        print(json.dumps(payload, indent=2))
    if args.save:
        args.save.write_text(json.dumps(payload, indent=2))
    if args.chart:
        draw_chart(everything, args.chart)
    return 0 if all(result.error is None for result in everything) else 1


if __name__ == "__main__":
    sys.exit(main())
