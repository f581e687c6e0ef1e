"""Certificates for TLS tests, made with the openssl command: self-signed ones, and a site CA
that signs valid and expired ones."""

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


class SiteCA:
    """A certificate authority of the site's own, signing its modalities' certificates."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = folder / "ca.key", folder / "ca.pem"
        command = [require_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes"]
        command += ["-keyout", str(self.key), "-out", str(self.cert), "-days", "2"]
        command += ["-subj", "/CN=Site CA", "-addext", "basicConstraints=critical,CA:TRUE"]
        subprocess.run(command, check=True, capture_output=True)
        (folder / "index.txt").write_text("")
        (folder / "serial").write_text("1000\n")
        (folder / "ca.cnf").write_text(
            "[ca]\ndefault_ca = site\n[site]\n"
            f"database = {folder}/index.txt\nserial = {folder}/serial\n"
            f"new_certs_dir = {folder}\ndefault_md = sha256\npolicy = any\n"
            "unique_subject = no\ncopy_extensions = none\n[any]\ncommonName = supplied\n"
        )

    def sign(self, name: str, *, expired: bool = False) -> tuple[Path, Path]:
        """A key and a certificate for ``name`` (its Common Name), signed by this CA; one
        that expired in 2020 when ``expired``."""
        openssl = require_tool("openssl")
        key = self.folder / f"{name}{'-expired' if expired else ''}.key"
        request, cert = key.with_suffix(".csr"), key.with_suffix(".pem")
        asked = [openssl, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key)]
        asked += ["-out", str(request), "-subj", f"/CN={name}"]
        subprocess.run(asked, check=True, capture_output=True)
        dates = ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]
        validity = dates if expired else ["-days", "2"]
        signing = [openssl, "ca", "-batch", "-notext", "-config", str(self.folder / "ca.cnf")]
        signing += ["-keyfile", str(self.key), "-cert", str(self.cert), *validity]
        signing += ["-in", str(request), "-out", str(cert)]
        subprocess.run(signing, check=True, capture_output=True)
        return key, cert
