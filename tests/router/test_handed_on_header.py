"""What the receiver hands on of a header is what the router would read from the file.

The receiver walks every element before answering Success and keeps the raw values of the
filing elements in ``instance.received``; the router files from those without opening the
file. Over every DICOM file pydicom ships (its test data and character set files), the
filing facts from the message equal the ones read from the file.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydicom.data import get_charset_files, get_testdata_files
from pydicom.filereader import read_file_meta_info

from services.receiver.intake import FILING_TAGS, filing_header
from services.router.header import Unroutable, header_from_message, read_header
from shared.dicom import encoding
from shared.dicom.encoding import check_file
from shared.messages import InstanceReceived


def corpus() -> list[Path]:
    return sorted(
        Path(p)
        for p in [*get_testdata_files(), *get_charset_files()]
        if Path(p).is_file() and Path(p).suffix == ".dcm"
    )


def received(path: Path) -> InstanceReceived | None:
    """The message the receiver would publish for ``path``; None when it would not accept it."""
    try:
        meta = read_file_meta_info(path)
        facts = check_file(path, None, capture=FILING_TAGS)
    except Exception:
        return None
    if facts.captured is None or not facts.study_instance_uid or not facts.series_instance_uid:
        return None
    try:
        return InstanceReceived(
            sop_instance_uid=facts.sop_instance_uid,
            sop_class_uid=str(meta.get("MediaStorageSOPClassUID", "1.2.3")),
            transfer_syntax_uid=str(meta.TransferSyntaxUID),
            spool_name="x.dcm",
            size=path.stat().st_size,
            received_at=datetime.now(UTC),
            calling_ae="MODALITY",
            called_ae="STORE_SERVER",
            peer_address="127.0.0.1",
            peer_port=104,
            filing_header=filing_header(facts.captured),
        )
    except ValueError:  # a UID the receiver refuses at the door
        return None


@pytest.mark.parametrize("source", corpus(), ids=lambda p: p.name)
def test_the_handed_on_header_files_as_the_file_does(source: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        message = received(source)
        if message is None:
            pytest.skip("the receiver would not take this file")
        assert message.filing_header is not None
        try:
            from_file = read_header(source)
        except Unroutable as error:
            with pytest.raises(Unroutable):
                header_from_message(message, message.filing_header)
            pytest.skip(f"not fileable either way: {error}")
        from_message = header_from_message(message, message.filing_header)
    assert from_message == from_file


def test_a_long_filing_value_is_not_handed_on(tmp_path: Path) -> None:
    """A value past the capture's bound (a hostile name): the router reads the file."""
    import pydicom

    source = next(p for p in get_testdata_files() if p.endswith("/MR_small.dcm"))
    dataset = pydicom.dcmread(source)
    dataset.RequestingPhysician = "A" * 5000
    path = tmp_path / "long.dcm"
    dataset.save_as(path)
    assert check_file(path, None, capture=FILING_TAGS).captured is None
    assert check_file(Path(source), None, capture=FILING_TAGS).captured is not None


def walked(path: Path) -> object:
    """What the structure check says of ``path``: its facts, or its refusal's reason."""
    try:
        return check_file(path, None, capture=FILING_TAGS)
    except Exception as error:
        return f"{type(error).__name__}: {error}"


@pytest.mark.parametrize("source", corpus(), ids=lambda p: p.name)
def test_a_file_walked_in_memory_reads_as_walked_on_disk(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small files are read whole and walked in memory, large ones on disk: the same facts and
    the same refusals either way, for whole files and for every one cut short."""
    data = source.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) * 2 // 3])
    in_memory = [walked(source), walked(cut)]
    monkeypatch.setattr(encoding, "IN_MEMORY", 0)
    assert [walked(source), walked(cut)] == in_memory
