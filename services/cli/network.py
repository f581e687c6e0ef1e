"""``store-server echo`` and ``store-server send``: talk to a DICOM peer."""

from __future__ import annotations

import argparse
import ssl
import sys
from pathlib import Path
from typing import TextIO

from pydicom.uid import UID

from shared.dicom.net import (
    DEFAULT_CALLED_AET,
    DEFAULT_CALLING_AET,
    NetError,
    SendResult,
    client_tls_context,
    echo,
    send,
)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    echo_parser = commands.add_parser("echo", help="C-ECHO a DICOM peer")
    _add_peer_flags(echo_parser)
    echo_parser.set_defaults(handler=run_echo)

    send_parser = commands.add_parser("send", help="send files and folders to a DICOM peer")
    _add_peer_flags(send_parser)
    send_parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    send_parser.set_defaults(handler=run_send)


def run_echo(args: argparse.Namespace) -> int:
    try:
        result = echo(
            args.host,
            args.port,
            called_aet=args.aec,
            calling_aet=args.aet,
            tls=_tls(args),
            timeout=args.timeout,
        )
    except NetError as error:
        print(f"store-server echo: {error}", file=sys.stderr)
        return 1
    milliseconds = result.round_trip * 1000
    print(f"status 0x{result.status:04X} ({result.category}) in {milliseconds:.1f} ms")
    return 0 if result.ok else 1


def run_send(args: argparse.Namespace) -> int:
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None

    def report(result: SendResult, done: int, total: int) -> None:
        if bar is not None:
            bar.clear()
        print(_result_line(result), flush=True)
        if bar is not None:
            bar.draw(done, total)

    try:
        summary = send(
            args.host,
            args.port,
            args.paths,
            called_aet=args.aec,
            calling_aet=args.aet,
            tls=_tls(args),
            timeout=args.timeout,
            progress=report,
        )
    except NetError as error:
        print(f"store-server send: {error}", file=sys.stderr)
        return 1
    if bar is not None:
        bar.clear()
    print(f"{summary.sent} sent, {summary.failed} failed, {len(summary.results)} files")
    return 0 if summary.failed == 0 and summary.results else 1


class ProgressBar:
    """One line on a terminal, redrawn in place."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def draw(self, done: int, total: int) -> None:
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self._stream.write(f"\r[{bar}] {done}/{total}")
        self._stream.flush()

    def clear(self) -> None:
        self._stream.write("\r\033[K")
        self._stream.flush()


def _result_line(result: SendResult) -> str:
    if result.outcome == "sent":
        syntax = UID(result.transfer_syntax).name if result.transfer_syntax else ""
        return f"sent    {result.path} ({syntax})"
    return f"FAILED  {result.path}: {result.reason}"


def _add_peer_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", metavar="HOST")
    parser.add_argument("port", type=int, metavar="PORT")
    parser.add_argument(
        "--aet", default=DEFAULT_CALLING_AET, help=f"our AE title (default {DEFAULT_CALLING_AET})"
    )
    parser.add_argument(
        "--aec",
        default=DEFAULT_CALLED_AET,
        help=f"the peer's AE title (default {DEFAULT_CALLED_AET})",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="connect with TLS")
    tls.add_argument("--tls-ca", type=Path, metavar="PEM", help="CA certificates to trust")
    tls.add_argument("--tls-cert", type=Path, metavar="PEM", help="our certificate")
    tls.add_argument("--tls-key", type=Path, metavar="PEM", help="our private key")
    tls.add_argument(
        "--tls-no-verify", action="store_true", help="do not check the peer's certificate"
    )


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.tls or args.tls_ca or args.tls_cert):
        return None
    return client_tls_context(
        args.tls_ca, args.tls_cert, args.tls_key, verify=not args.tls_no_verify
    )
