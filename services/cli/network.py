"""``store-server echo`` and ``store-server send``: talk to a DICOM peer."""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from pathlib import Path
from typing import TextIO

from pydicom.uid import UID

from services.cli.options import ae_title, port_number, positive_number
from shared.dicom.files import DicomFileError, read_dataset
from shared.dicom.net import (
    DEFAULT_CALLED_AET,
    DEFAULT_CALLING_AET,
    NetError,
    SendResult,
    client_tls_context,
    echo,
    send,
)
from shared.files import file_error_reason


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
        _check_paths(args.paths)
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
    except (NetError, DicomFileError) as error:
        print(f"store-server send: {error}", file=sys.stderr)
        return 1
    if bar is not None:
        bar.clear()
    if not summary.results:
        print("store-server send: no files to send in the folders given", file=sys.stderr)
        return 1
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


def _check_paths(paths: list[Path]) -> None:
    """Refuse a path named on the command line that cannot be sent, before connecting, as
    storescu does; files in a folder that are not DICOM are reported one by one instead."""
    for path in paths:
        try:
            if path.is_dir():
                with os.scandir(path):
                    pass
                continue
        except OSError as error:
            raise DicomFileError(f"{path}: {file_error_reason(error)}") from None
        if not path.exists():
            raise DicomFileError(f"{path}: no such file or folder")
        read_dataset(path)


def _result_line(result: SendResult) -> str:
    if result.outcome == "sent":
        syntax = UID(result.transfer_syntax).name if result.transfer_syntax else ""
        return f"sent    {result.path} ({syntax})"
    return f"FAILED  {result.path}: {result.reason}"


def _add_peer_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", metavar="HOST")
    parser.add_argument("port", type=port_number, metavar="PORT")
    parser.add_argument(
        "--aet",
        type=ae_title,
        default=DEFAULT_CALLING_AET,
        help=f"our AE title (default {DEFAULT_CALLING_AET})",
    )
    parser.add_argument(
        "--aec",
        type=ae_title,
        default=DEFAULT_CALLED_AET,
        help=f"the peer's AE title (default {DEFAULT_CALLED_AET}, a store server's)",
    )
    parser.add_argument(
        "--timeout", type=positive_number, default=30.0, help="seconds (default 30)"
    )
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
    given = (("--tls-ca", args.tls_ca), ("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key))
    for flag, path in given:
        try:
            if path is not None:
                path.open("rb").close()
        except OSError as error:
            raise NetError(f"{flag} {path}: {file_error_reason(error)}") from None
    return client_tls_context(
        args.tls_ca, args.tls_cert, args.tls_key, verify=not args.tls_no_verify
    )
