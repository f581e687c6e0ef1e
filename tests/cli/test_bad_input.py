"""A bad input gets one line on stderr naming the problem and the input, never a traceback.

Exit code 2 for a usage error (a malformed argument), 1 for a failure (a file that is not
there, not DICOM, not readable; a host that does not resolve).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from services.cli.main import main
from tests.support.cli import store_server
from tests.support.services import sample

CT = str(sample("CT_small.dcm"))
PATIENT = ["--patient-name", "Doe^Jane", "--patient-id", "P1"]
# Nothing is ever resolved under .invalid (RFC 6761).
NO_HOST = "nosuch.invalid"


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, str]:
    """The bad inputs, by the name the cases use for them."""
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "folder.jpg").mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("not DICOM, not TOML = [\n")
    plain = tmp_path / "plain-file"
    plain.write_text("")
    return {
        "missing": str(tmp_path / "nosuch.dcm"),
        "folder": str(folder),
        "picture_folder": str(tmp_path / "folder.jpg"),
        "text": str(text),
        "plain": str(plain),
        "out": str(tmp_path / "out"),
        "data": str(tmp_path / "data"),
    }


CASES = [
    # tags
    (["tags", "{missing}"], 1, "store-server tags: {missing}: no such file"),
    (["tags", "{folder}"], 1, "store-server tags: {folder}: is a folder, not a file"),
    (["tags", "{text}"], 1, "store-server tags: {text}: not a DICOM file"),
    (
        ["tags", CT, "PatientNam"],
        2,
        "store-server tags: argument TAG: unknown tag 'PatientNam': give a DICOM keyword or "
        "GGGG,EEEE (see store-server tags --help)",
    ),
    (
        ["tags", CT, "0028,00ZZ"],
        2,
        "store-server tags: argument TAG: unknown tag '0028,00ZZ': give a DICOM keyword or "
        "GGGG,EEEE (see store-server tags --help)",
    ),
    (
        ["tags", CT, "--set", "PatientName", "-o", "{out}"],
        2,
        "store-server tags: argument --set: 'PatientName': expected TAG=VALUE "
        "(see store-server tags --help)",
    ),
    (
        ["tags", CT, "--remove", "Foo", "-o", "{out}"],
        2,
        "store-server tags: argument --remove: unknown tag 'Foo': give a DICOM keyword or "
        "GGGG,EEEE (see store-server tags --help)",
    ),
    (
        ["tags", CT, "--set", "PatientAge=forty", "-o", "{out}"],
        2,
        "store-server tags: invalid value 'forty' for (0010,1010) PatientAge (VR AS): "
        "Invalid value for VR AS: 'forty'.",
    ),
    (
        ["tags", CT, "--remove", "PatientMotherBirthName", "-o", "{out}"],
        2,
        "store-server tags: cannot remove (0010,1060) PatientMotherBirthName: it is not in "
        "the file",
    ),
    # convert
    (
        ["convert", "jpg", "{missing}", "{out}.jpg"],
        1,
        "store-server convert: {missing}: no such file",
    ),
    (
        ["convert", "jpg", "{folder}", "{out}.jpg"],
        1,
        "store-server convert: {folder}: is a folder, not a file",
    ),
    (
        ["convert", "jpg", "{text}", "{out}.jpg"],
        1,
        "store-server convert: {text}: not a DICOM file",
    ),
    (
        ["convert", "thumbnail", "{text}", "{out}.png"],
        1,
        "store-server convert: {text}: not a DICOM file",
    ),
    (
        ["convert", "dcm", "{missing}", "{out}.dcm", *PATIENT],
        1,
        "store-server convert: {missing}: no such file",
    ),
    (
        ["convert", "dcm", "{folder}", "{out}.dcm", *PATIENT],
        1,
        "store-server convert: {folder}: is a folder, not a file",
    ),
    (
        ["convert", "jpg", CT, "{out}.jpg", "--frame", "0"],
        2,
        "store-server convert jpg: argument --frame: '0': a frame number (from 1), middle or all "
        "(see store-server convert jpg --help)",
    ),
    (
        ["convert", "jpg", CT, "{picture_folder}"],
        1,
        "store-server convert: {picture_folder}: cannot write: is a folder, not a file",
    ),
    (
        ["convert", "jpg", CT, "{out}.jpg", "--window", "40", "0"],
        2,
        "store-server convert: --window: window width must be at least 1, got 0.0",
    ),
    # echo and send
    (
        ["echo", NO_HOST, "104"],
        1,
        f"store-server echo: STORE_SERVER@{NO_HOST}:104: unknown host '{NO_HOST}'",
    ),
    (
        ["send", NO_HOST, "104", CT],
        1,
        f"store-server send: STORE_SERVER@{NO_HOST}:104: unknown host '{NO_HOST}'",
    ),
    (
        ["echo", "127.0.0.1", "99999"],
        2,
        "store-server echo: argument PORT: '99999' is not a port number (1 to 65535) "
        "(see store-server echo --help)",
    ),
    (
        ["send", "127.0.0.1", "0", CT],
        2,
        "store-server send: argument PORT: '0' is not a port number (1 to 65535) "
        "(see store-server send --help)",
    ),
    (
        ["echo", "127.0.0.1", "104", "--aec", "MUCH_TOO_LONG_AE_TITLE"],
        2,
        "store-server echo: argument --aec: 'MUCH_TOO_LONG_AE_TITLE': an AE title is 1 to 16 "
        "printable characters without a backslash (see store-server echo --help)",
    ),
    (
        ["send", "127.0.0.1", "104", "{missing}"],
        1,
        "store-server send: {missing}: no such file or folder",
    ),
    (["send", "127.0.0.1", "104", "{text}"], 1, "store-server send: {text}: not a DICOM file"),
    (
        ["send", "127.0.0.1", "104", "{folder}"],
        1,
        "store-server send: no files to send in the folders given",
    ),
    (
        ["echo", "127.0.0.1", "104", "--timeout", "0"],
        2,
        "store-server echo: argument --timeout: '0' is not a number above zero "
        "(see store-server echo --help)",
    ),
    (
        ["echo", "127.0.0.1", "104", "--tls-ca", "{missing}"],
        1,
        "store-server echo: --tls-ca {missing}: no such file",
    ),
    # the commands on the index, the bus and the settings
    (
        ["studies", "--config", "{folder}"],
        2,
        "store-server studies: --config {folder}: is a folder, not a file",
    ),
    (
        ["accounts", "list", "--config", "{missing}"],
        2,
        "store-server accounts: --config {missing}: no such file",
    ),
    (
        ["study", "1.2.3", "--config", "{text}"],
        2,
        "store-server study: --config {text}: not valid TOML: Expected '=' after a key in a "
        "key/value pair (at line 1, column 5)",
    ),
    (
        ["db", "current", "--data-dir", "{plain}"],
        2,
        "store-server db: invalid setting data_dir (environment STORE_SERVER_DATA_DIR): "
        "{plain} is not a folder",
    ),
    (
        ["studies", "--data-dir", "{plain}/data"],
        1,
        "store-server studies: cannot open the index sqlite:///{plain}/data/index.sqlite: "
        "not a directory ({plain}/data)",
    ),
    (
        ["studies", "--data-dir", "{data}", "--database", "postgresql://127.0.0.1:99999/db"],
        2,
        "store-server studies: invalid setting database.url (environment "
        "STORE_SERVER_DATABASE__URL): port 99999 is not a port number (1 to 65535)",
    ),
    (
        ["studies", "--data-dir", "{data}", "--database", f"postgresql://{NO_HOST}/db"],
        1,
        f"store-server studies: database.url: unknown host '{NO_HOST}'",
    ),
    (
        ["sheet", "1.2.3", "--data-dir", "{data}", "--database", f"postgresql://{NO_HOST}/db"],
        1,
        f"store-server sheet: database.url: unknown host '{NO_HOST}'",
    ),
    (
        ["db", "upgrade", "--data-dir", "{data}", "--database", f"postgresql://{NO_HOST}/db"],
        1,
        f"store-server db: database.url: unknown host '{NO_HOST}'",
    ),
    (
        ["dead-letters", "router", "--bus", f"amqp://{NO_HOST}/"],
        1,
        f"store-server dead-letters: bus.url: unknown host '{NO_HOST}'",
    ),
    (
        ["dead-letters", "router", "--bus", "amqp://127.0.0.1:99999/"],
        2,
        "store-server dead-letters: invalid setting bus.url (environment "
        "STORE_SERVER_BUS__URL): port 99999 is not a port number (1 to 65535)",
    ),
    (
        ["health", "--data-dir", "{data}", "--port", "99999"],
        2,
        "store-server health: invalid setting receiver.port (environment "
        "STORE_SERVER_RECEIVER__PORT): Input should be less than or equal to 65535",
    ),
    (
        ["accounts", "add", "X", "--data-dir", "{data}", "--owner", "abc"],
        2,
        "store-server accounts add: argument --owner: 'abc': expected UID or UID:GID numbers "
        "(see store-server accounts add --help)",
    ),
]


@pytest.mark.parametrize(
    ("arguments", "code", "message"), CASES, ids=[" ".join(c[0][:2]) for c in CASES]
)
def test_bad_input_is_one_line_and_an_exit_code(
    arguments: list[str],
    code: int,
    message: str,
    inputs: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [argument.format(**inputs) for argument in arguments]
    try:
        returned = main(argv)
    except SystemExit as exit:  # argparse exits rather than returns
        returned = int(exit.code or 0)
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    expected = message.format(**inputs)
    if NO_HOST in expected:  # the resolver's own words follow, and differ between systems
        assert error.startswith(expected + " ("), error
    else:
        assert error == expected + "\n"
    assert returned == code
    assert not Path(inputs["out"]).exists()


UNREADABLE = [
    (["tags", "{file}"], 1, "store-server tags: {file}: permission denied"),
    (
        ["convert", "jpg", "{file}", "{out}.jpg"],
        1,
        "store-server convert: {file}: permission denied",
    ),
    (
        ["convert", "dcm", "{file}", "{out}.dcm", *PATIENT],
        1,
        "store-server convert: {file}: permission denied",
    ),
    (["send", "127.0.0.1", "104", "{file}"], 1, "store-server send: {file}: permission denied"),
    (
        ["studies", "--config", "{file}"],
        2,  # as every problem with the settings
        "store-server studies: --config {file}: permission denied",
    ),
]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
@pytest.mark.parametrize(
    ("arguments", "code", "message"), UNREADABLE, ids=[" ".join(u[0][:2]) for u in UNREADABLE]
)
def test_an_unreadable_file_is_one_line_and_an_exit_code(
    arguments: list[str], code: int, message: str, tmp_path: Path
) -> None:
    unreadable = tmp_path / "unreadable.dcm"
    unreadable.write_bytes(Path(CT).read_bytes())
    unreadable.chmod(0)
    names = {"file": str(unreadable), "out": str(tmp_path / "out")}

    completed = store_server(*(a.format(**names) for a in arguments), unprivileged=True)

    assert completed.stderr == message.format(**names) + "\n"
    assert completed.returncode == code


def test_health_says_a_host_does_not_exist_without_waiting(
    inputs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--database", f"postgresql://{NO_HOST}/index", "--bus", f"amqp://{NO_HOST}/"]
    started = time.monotonic()

    code = main(["health", "--role", "indexer", "--data-dir", inputs["data"], *arguments, "--json"])

    captured = capsys.readouterr()
    assert code == 1 and captured.err == ""
    details = {check["name"]: check["detail"] for check in json.loads(captured.out)["checks"]}
    assert details["bus"].startswith(f"bus.url: unknown host '{NO_HOST}' (")
    assert details["database"].startswith(f"database.url: unknown host '{NO_HOST}' (")
    assert time.monotonic() - started < 5  # the --timeout of 5 s was not waited out
