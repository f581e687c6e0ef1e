"""The production receiver's peak memory while it takes a 1 GiB instance with 200 idle
connections open (target: under 150 MB).

Starts ``store-server receiver`` (RabbitMQ at 127.0.0.1:5672), opens the idle connections,
sends one CT instance whose Pixel Data is 1 GiB with DCMTK ``storescu``, and reads the
receiver's peak resident memory when it exits. Everything is removed before exiting.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import tempfile
from pathlib import Path

from generate import generate_study
from pydicom import dcmread
from pydicom.filewriter import dcmwrite
from receive_rate import free_port, send, wait_ready
from targets import HOST, RECEIVER, started, stored

TARGET_MB = 150


def huge_instance(folder: Path, pixel_bytes: int) -> Path:
    """A CT instance whose Pixel Data is ``pixel_bytes`` long, written without holding it."""
    [template] = generate_study(folder / "template", 1, 16, "CT")
    dataset = dcmread(template)
    del dataset.PixelData
    dataset.Rows, dataset.Columns = 16384, pixel_bytes // (16384 * 2)
    path = folder / "huge.dcm"
    dcmwrite(path, dataset, enforce_file_format=True)
    block = bytes(range(256)) * (1 << 18)  # 64 MiB
    with path.open("ab") as handle:
        handle.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OW", 0, pixel_bytes))
        for start in range(0, pixel_bytes, len(block)):
            handle.write(block[: min(len(block), pixel_bytes - start)])
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--idle", type=int, default=200, help="idle connections held open")
    parser.add_argument("--mib", type=int, default=1024, help="Pixel Data size in MiB")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="store-server-memory-") as temp:
        root = Path(temp)
        source = root / "source"
        source.mkdir()
        path = huge_instance(source, args.mib * 2**20)
        work = root / "receiver"
        work.mkdir()
        with started(RECEIVER, free_port(), work) as running:
            wait_ready(running.process, running.log, running.port, running.ae_title)
            idle = [socket.create_connection((HOST, running.port)) for _ in range(args.idle)]
            try:
                seconds = send([path], running.port, running.ae_title, root)
                count = stored(running)
            finally:
                for connection in idle:
                    connection.close()
        usage = running.usage
        assert usage is not None
    print(
        f"{args.mib} MiB instance in {seconds:.1f}s with {args.idle} idle connections: "
        f"stored {count}, receiver peak {usage.peak_mb:.0f} MB (target < {TARGET_MB} MB)"
    )
    return 0 if count == 1 and usage.peak_mb < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
