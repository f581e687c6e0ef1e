"""Every storage instance in pydicom's test data arrives intact, in its own transfer syntax.

"What was sent" is what DCMTK's storescp writes in bit-preserving mode when the same sender
sends it the same files: senders re-encode a little (storescu drops Data Set Trailing Padding,
for one), so the original file is not the reference, the bytes on the wire are. Two senders:
DCMTK's storescu, and the toolkit's own ``send``, which also carries JPEG 2000 (DCMTK 3.6.7's
storescu cannot) and proposes every file in its own transfer syntax.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_files
from pydicom.errors import InvalidDicomError

from shared.dicom.net import send
from tests.receiver.conftest import by_uid
from tests.support import dcmtk
from tests.support.server import ServerUnderTest, StartServer

BATCH = 30  # files per storescu run: keeps the proposed contexts under the 128 limit
COMPRESSED = {
    "1.2.840.10008.1.2.4.50": "JPEG baseline",
    "1.2.840.10008.1.2.4.70": "JPEG lossless",
    "1.2.840.10008.1.2.4.80": "JPEG-LS lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 lossless",
    "1.2.840.10008.1.2.5": "RLE lossless",
}
Sender = Callable[[int, list[Path], str], None]


def storage_instances() -> list[Path]:
    """Part 10 files with a SOP class and instance, a study and a series: the ones a modality
    could send and an archive file (see :func:`unfileable_instances` for the others)."""
    return [path for path in sendable_instances() if _names_its_study_and_series(path)]


def unfileable_instances() -> list[Path]:
    """Sendable test files that name no study or no series: refused, as nothing can file them."""
    return [path for path in sendable_instances() if not _names_its_study_and_series(path)]


def _names_its_study_and_series(path: Path) -> bool:
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    return bool(dataset.get("StudyInstanceUID")) and bool(dataset.get("SeriesInstanceUID"))


@functools.cache
def sendable_instances() -> list[Path]:
    """Part 10 files with a SOP class and instance: the ones a modality could send."""
    found = []
    for name in get_testdata_files():
        path = Path(name)
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError):
            continue
        meta = dataset.get("file_meta")
        if meta is None or "TransferSyntaxUID" not in meta:
            continue
        if "SOPInstanceUID" in dataset and "SOPClassUID" in dataset:
            if dataset.SOPClassUID == "1.2.840.10008.1.3.10":  # DICOMDIR: not an instance
                continue
            found.append(path)
    return sorted(found)


def rounds(paths: list[Path]) -> Iterator[list[Path]]:
    """Groups in which no SOP Instance UID repeats (some test files share one)."""
    by_uid: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        by_uid[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)].append(path)
    depth = max(len(group) for group in by_uid.values())
    for index in range(depth):
        yield [group[index] for group in by_uid.values() if len(group) > index]


# storescu proposes one family of transfer syntaxes per run, as a modality is configured to.
STORESCU_PROPOSAL = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
}


def with_storescu(port: int, files: list[Path], called_ae: str) -> None:
    by_syntax: dict[str, list[Path]] = defaultdict(list)
    for path in files:
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        by_syntax[STORESCU_PROPOSAL.get(str(meta.TransferSyntaxUID), "-x=")].append(path)
    for proposal, group in by_syntax.items():
        for start in range(0, len(group), BATCH):
            batch = group[start : start + BATCH]
            outcome = dcmtk.storescu(port, batch, called_ae=called_ae, options=["-R", proposal])
            # storescu cannot send some files at all (it has no JPEG 2000 codec, for one);
            # every one it did send was answered Success.
            assert set(outcome.store_statuses) <= {"Success"}, outcome.output


def with_toolkit(port: int, files: list[Path], called_ae: str) -> None:
    summary = send("127.0.0.1", port, files, called_aet=called_ae)
    refused = [r for r in summary.results if r.status is not None and r.status != 0]
    assert not refused, refused


def compare_corpus(server: ServerUnderTest, storescp: tuple[int, Path], sender: Sender) -> set[str]:
    """Send the corpus to both; assert ours equals the reference; return the syntaxes seen."""
    reference_port, reference_dir = storescp
    syntaxes: set[str] = set()
    compared = 0
    for group in rounds(storage_instances()):
        sender(reference_port, group, "ANY-SCP")
        sender(server.port, group, "STORE_SERVER")
        sent = by_uid(sorted(reference_dir.iterdir()))
        spooled = by_uid(server.spool)
        assert spooled.keys() == sent.keys()
        for uid, reference in sent.items():
            ours = spooled[uid]
            assert dcmtk.dataset_bytes(ours) == dcmtk.dataset_bytes(reference), uid
            syntax = pydicom.dcmread(ours, stop_before_pixels=True).file_meta.TransferSyntaxUID
            sent_syntax = pydicom.dcmread(reference, stop_before_pixels=True).file_meta
            assert syntax == sent_syntax.TransferSyntaxUID
            syntaxes.add(str(syntax))
            compared += 1
        for path in [*reference_dir.iterdir(), *server.spool]:
            path.unlink()
    assert compared >= 90
    return syntaxes


def test_storescu_corpus_arrives_byte_for_byte(
    start_server: StartServer, storescp: tuple[int, Path]
) -> None:
    assert len(storage_instances()) > 100
    syntaxes = compare_corpus(start_server(), storescp, with_storescu)
    dcmtk_sendable = set(COMPRESSED) - {"1.2.840.10008.1.2.4.90"}
    assert dcmtk_sendable <= syntaxes


def test_toolkit_corpus_arrives_byte_for_byte_including_jpeg_2000(
    start_server: StartServer, storescp: tuple[int, Path]
) -> None:
    syntaxes = compare_corpus(start_server(), storescp, with_toolkit)
    assert set(COMPRESSED) <= syntaxes


def test_test_files_that_name_no_study_or_series_are_refused(start_server: StartServer) -> None:
    unfileable = unfileable_instances()
    assert len(unfileable) >= 4  # JPEG-LS near-lossless and lossy samples, among others
    server = start_server()
    summary = send("127.0.0.1", server.port, unfileable, called_aet="STORE_SERVER")
    assert {result.status for result in summary.results} == {0xA900}
    assert server.spool == []
