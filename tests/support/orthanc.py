"""Orthanc, the archive a site would otherwise pick, as a DICOM sender in tests: started on
free ports with a configuration of its own, given files over REST, told to send them."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.services import free_tcp_port, require_tool


@dataclass(frozen=True)
class Orthanc:
    http_port: int
    dicom_port: int

    def call(self, method: str, path: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.loads(answer.read() or b"null")

    def upload(self, paths: Sequence[Path]) -> list[str]:
        """Store files in Orthanc; their Orthanc instance IDs."""
        return [self.call("POST", "/instances", path.read_bytes())["ID"] for path in paths]

    def store(self, modality: str, instances: Sequence[str]) -> Any:
        """C-STORE instances to a configured modality, on one association, and wait."""
        body = json.dumps({"Resources": list(instances), "Synchronous": True}).encode()
        return self.call("POST", f"/modalities/{modality}/store", body)


@contextmanager
def orthanc(
    folder: Path, modalities: dict[str, tuple[str, int]], dicom_port: int | None = None
) -> Iterator[Orthanc]:
    """Orthanc with ``modalities`` (name: (AE title, port) on 127.0.0.1) it can send to, on
    ``dicom_port`` when given (a destination configured before it was up)."""
    folder.mkdir(parents=True, exist_ok=True)
    running = Orthanc(free_tcp_port(), dicom_port or free_tcp_port())
    config = {
        "Name": "test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": running.http_port,
        "DicomPort": running.dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {
            name: [aet, "127.0.0.1", port] for name, (aet, port) in modalities.items()
        },
        "Plugins": [],
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [require_tool("Orthanc"), str(folder / "orthanc.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                running.call("GET", "/system")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"Orthanc did not start ({process.poll()})") from None
                time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
