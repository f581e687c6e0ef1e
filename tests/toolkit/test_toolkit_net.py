"""echo and send against DCMTK's storescp, a peer nobody here wrote."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID, ImplicitVRLittleEndian

from services.cli.main import main
from shared.dicom.contexts import MAX_CONTEXTS, OutgoingInstance, plan_associations
from shared.dicom.net import NetError, echo, send
from tests.toolkit.conftest import StoreSCP, sample_file, unused_port

# Distinct SOP instances in several transfer syntaxes, compressed and not.
MIXED = [
    "CT_small.dcm",  # Explicit VR Little Endian
    "MR_small_implicit.dcm",  # Implicit VR Little Endian
    "JPEG2000.dcm",  # JPEG 2000
    "SC_rgb_rle.dcm",  # RLE
    "JPGLosslessP14SV1_1s_1f_8b.dcm",  # JPEG lossless
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline
    "emri_small_jpeg_ls_lossless.dcm",  # JPEG-LS
]


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "outgoing"
    (folder / "nested").mkdir(parents=True)
    for index, name in enumerate(MIXED):
        shutil.copy(sample_file(name), (folder / "nested" if index % 2 else folder) / name)
    return folder


def received_by_uid(peer: StoreSCP) -> dict[str, pydicom.Dataset]:
    datasets = [pydicom.dcmread(path) for path in peer.files()]
    return {str(d.SOPInstanceUID): d for d in datasets}


def test_echo_reports_status_and_round_trip(start_storescp: Callable[..., StoreSCP]) -> None:
    peer = start_storescp()
    result = echo("127.0.0.1", peer.port)
    assert result.ok and result.status == 0 and result.category == "Success"
    assert 0 < result.round_trip < 5


def test_echo_without_a_peer_is_a_clear_error() -> None:
    with pytest.raises(NetError, match=r"STORE_SERVER@127.0.0.1:\d+: cannot connect: connection "):
        echo("127.0.0.1", unused_port(), timeout=5)


def test_send_keeps_each_files_transfer_syntax(
    start_storescp: Callable[..., StoreSCP], mixed_folder: Path
) -> None:
    peer = start_storescp("+xa")
    summary = send("127.0.0.1", peer.port, [mixed_folder])
    assert (summary.sent, summary.failed) == (len(MIXED), 0)
    received = received_by_uid(peer)
    for name in MIXED:
        original = pydicom.dcmread(sample_file(name))
        copy = received[str(original.SOPInstanceUID)]
        syntax = UID(original.file_meta.TransferSyntaxUID)
        if syntax.is_compressed:
            assert copy.file_meta.TransferSyntaxUID == syntax, name
        else:  # uncompressed may travel in whichever uncompressed syntax the peer prefers
            assert not UID(copy.file_meta.TransferSyntaxUID).is_compressed, name
        assert copy.PixelData == original.PixelData, name


def test_send_decompresses_for_a_peer_taking_only_uncompressed(
    start_storescp: Callable[..., StoreSCP], mixed_folder: Path
) -> None:
    peer = start_storescp("+xi")  # implicit VR little endian only
    summary = send("127.0.0.1", peer.port, [mixed_folder])
    assert (summary.sent, summary.failed) == (len(MIXED), 0)
    assert {r.transfer_syntax for r in summary.results} == {ImplicitVRLittleEndian}
    received = received_by_uid(peer)
    for name in MIXED:
        original = pydicom.dcmread(sample_file(name))
        copy = received[str(original.SOPInstanceUID)]
        assert copy.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian, name
        if UID(original.file_meta.TransferSyntaxUID) in {"1.2.840.10008.1.2.4.50"}:
            assert (
                np.abs(copy.pixel_array.astype(int) - original.pixel_array.astype(int)).max() <= 2
            )
        else:
            assert np.array_equal(copy.pixel_array, original.pixel_array), name


def test_send_command_reports_each_file_and_fails_on_any_failure(
    start_storescp: Callable[..., StoreSCP],
    mixed_folder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    peer = start_storescp("+xa")
    (mixed_folder / "notes.txt").write_text("not DICOM")
    code = main(["send", "127.0.0.1", str(peer.port), str(mixed_folder), "--aec", "STORESCP"])
    output = capsys.readouterr().out.splitlines()
    assert code == 1
    assert any(
        line.startswith("FAILED") and "notes.txt: not a DICOM file" in line for line in output
    )
    assert sum(line.startswith("sent") for line in output) == len(MIXED)
    assert output[-1] == f"{len(MIXED)} sent, 1 failed, {len(MIXED) + 1} files"
    assert len(peer.files()) == len(MIXED)


def test_echo_command(
    start_storescp: Callable[..., StoreSCP], capsys: pytest.CaptureFixture[str]
) -> None:
    peer = start_storescp()
    assert main(["echo", "127.0.0.1", str(peer.port), "--aet", "ME", "--aec", "STORESCP"]) == 0
    assert capsys.readouterr().out.startswith("status 0x0000 (Success) in ")
    assert main(["echo", "127.0.0.1", str(unused_port()), "--timeout", "5"]) == 1


def test_more_than_128_contexts_take_several_associations() -> None:
    instances = [
        OutgoingInstance(
            Path(f"{n}.dcm"), UID(f"1.2.3.{n}"), UID(f"1.2.4.{n}"), UID("1.2.840.10008.1.2.4.90")
        )
        for n in range(150)
    ]
    plans = plan_associations(instances)
    assert [len(p.instances) for p in plans] == [64, 64, 22]
    assert all(len(p.contexts) <= MAX_CONTEXTS for p in plans)
    shared = plan_associations([*instances[:1]] * 300)
    assert len(shared) == 1 and len(shared[0].contexts) == 2
