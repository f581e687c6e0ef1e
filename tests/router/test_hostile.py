"""Tag values that reach a path are hostile until proven otherwise: whatever they hold, every
file lands under the accounts root, and every instance is filed."""

from __future__ import annotations

import os
from pathlib import Path

from pydicom.datadict import dictionary_VR
from pydicom.uid import generate_uid

from shared.dicom.net import send
from tests.router.conftest import StartServer, filed_files, make_instance, wait_for_filed

HOSTILE = [
    "../../etc",
    "/",
    "/etc/passwd",
    "\\..\\windows",
    "a\0b",
    "..",
    ".",
    "x" * 300,
    "",
    "   ",
    "Ünïcödé 山田 ☢",
    "CON",
    "aux",
    "NUL.txt",
    "com1",
    "Lpt9.tar.gz",
    "trailing dot.",
    "trailing space ",
    'a<b>c:d"e|f?g*h',
    "~root",
    "$(reboot)",
    "-rf",
    "name/../../../../tmp",
]
PATH_TAGS = [
    "PatientName",
    "PatientID",
    "StudyDate",
    "AccessionNumber",
    "StudyID",
    "SeriesDescription",
    "ProtocolName",
    "Modality",
    "RequestingPhysician",
    "ReferringPhysicianName",
]


def test_hostile_values_in_every_path_tag_stay_under_the_root(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    outgoing = tmp_path / "outgoing"
    sent = []
    for keyword in PATH_TAGS:
        for value in HOSTILE:
            if dictionary_VR(keyword) in {"DA", "CS"} and not value.isascii():
                continue  # no character set applies to these VRs: not even writable
            tags: dict[str, object] = {
                "SeriesDescription": None if keyword == "ProtocolName" else "T1",
                keyword: value,
            }
            sent.append(
                make_instance(
                    outgoing,
                    study_uid=str(generate_uid()),
                    SpecificCharacterSet="ISO_IR 192",
                    tags=tags,
                )
            )
    # Whatever the numbers say: absent, negative, absurd, or not numbers at all.
    for numbers in ({"SeriesNumber": None}, {"InstanceNumber": -4}, {"EchoNumbers": "99999"}):
        sent.append(make_instance(outgoing, study_uid=str(generate_uid()), **numbers))
    summary = send("127.0.0.1", server.port, sent, called_aet="STORE_SERVER")
    assert summary.failed == 0, [r for r in summary.results if r.outcome != "sent"]

    filed = wait_for_filed(server, len(sent))

    root = server.settings.accounts_dir.resolve()
    assert len(filed) == len(sent)
    everything = [
        Path(folder) / name
        for folder, dirs, files in os.walk(server.settings.data_dir)
        for name in dirs + files
    ]
    for path in everything:
        resolved = path.resolve()
        assert resolved.is_relative_to(server.settings.data_dir.resolve()), path
        assert "\0" not in str(path)
        assert all(len(part.encode()) <= 255 for part in path.parts)
    for path in filed:
        relative = path.resolve().relative_to(root)
        assert ".." not in relative.parts
        assert relative.parts[-3] == "Dicom"
        assert all(part.strip() == part and part not in {"", ".", ".."} for part in relative.parts)
    assert not list(server.settings.quarantine_dir.iterdir())
    assert len(filed_files(server)) == len(sent)
    for folder, dirs, files in os.walk(root):
        names = dirs + files
        assert all(windows_can_hold(name) for name in names), (folder, names)
        # Names that differ only in case are one name on a Windows share.
        assert len({name.casefold() for name in names}) == len(names), (folder, names)


WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {
    f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789¹²³"
}


def windows_can_hold(name: str) -> bool:
    """What an SMB share of the accounts tree can hold as a file or folder name."""
    return (
        name.split(".")[0].upper() not in WINDOWS_DEVICES
        and not name.endswith((".", " "))
        and not any(c in '<>:"/\\|?*' or ord(c) < 32 for c in name)
    )


def test_names_alike_but_for_case_are_two_folders_a_windows_share_tells_apart(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Two studies whose folder names differ only in case, in one account, and two series of
    one study likewise: each gets a name of its own, whatever the case."""
    server = start_server()
    study = str(generate_uid())
    sent = [
        make_instance(tmp_path, study_uid=str(generate_uid()), PatientName="Doe^Jane"),
        make_instance(tmp_path, study_uid=str(generate_uid()), PatientName="DOE^JANE"),
        make_instance(tmp_path, study_uid=study, SeriesDescription="t1 axial"),
        make_instance(tmp_path, study_uid=study, SeriesDescription="T1 AXIAL"),
    ]
    summary = send("127.0.0.1", server.port, sent, called_aet="STORE_SERVER")
    assert summary.failed == 0
    filed = wait_for_filed(server, len(sent))
    relative = [path.relative_to(server.settings.accounts_dir).parts for path in filed]
    studies = {parts[1] for parts in relative}
    assert len({name.casefold() for name in studies}) == len(studies) == 3, studies
    [two_series] = [
        {parts[3] for parts in relative if parts[1] == folder}
        for folder in studies
        if len({parts[3] for parts in relative if parts[1] == folder}) > 1
    ]
    assert len({name.casefold() for name in two_series}) == 2, two_series


# Values pydicom cannot convert, or finds under a VR or a character set it does not expect.
UNREADABLE: list[dict[int | None, tuple[str, bytes]]] = [
    {0x00200011: ("IS", b"abc ")},  # Series Number
    {0x00200013: ("IS", b"1.5e3x")},  # Instance Number
    {0x00180086: ("IS", b"- ")},  # Echo Numbers
    {0x00100010: ("OB", b"\x00\xffDoe^Jane\x00")},  # Patient Name, binary
    {0x00080060: ("US", b"\x02\x00")},  # Modality as a number
    {0x00080005: ("CS", b"ISO_IR 999"), 0x00321032: ("PN", b"M\xfcller^J\xf6rg")},
    {0x00080005: ("CS", b"ISO 2022 IR 87"), 0x00080090: ("PN", b"\x1b$B;3ED\x1b")},
    {0x00080020: ("DA", b"2026-13-45")},  # Study Date
]


def test_values_that_cannot_be_read_are_absent_and_the_instance_filed(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Success was answered: the instance is filed, whatever its other values say."""
    server = start_server()
    sent = [
        make_instance(tmp_path, study_uid=str(generate_uid()), raw=values) for values in UNREADABLE
    ]
    summary = send("127.0.0.1", server.port, sent, called_aet="STORE_SERVER")
    assert summary.failed == 0, [r for r in summary.results if r.outcome != "sent"]
    assert len(wait_for_filed(server, len(sent))) == len(sent)
    assert not list(server.settings.quarantine_dir.iterdir())
