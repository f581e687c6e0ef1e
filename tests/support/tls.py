"""Certificates for TLS tests, made with the openssl command."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.services import require_tool


def make_certificate(folder: Path, name: str, address: str = "") -> tuple[Path, Path]:
    """A self-signed certificate and its key, made with the openssl command."""
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    names = ["-addext", f"subjectAltName=IP:{address}"] if address else []
    command = [require_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes"]
    command += ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}"]
    subprocess.run([*command, *names], check=True, capture_output=True)
    return key, cert
