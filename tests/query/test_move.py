"""C-MOVE to a destination known by its AE title: DCMTK's movescu asks, DCMTK's storescp
receives; what arrives is what was filed."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import C_CANCEL_RQ, C_MOVE_RQ
from pynetdicom.dimse_primitives import C_CANCEL, C_MOVE

from services.receiver.identifier import encode
from services.receiver.move import STUDY_ROOT
from tests.support import dcmtk
from tests.support.query import findscu, movescu
from tests.support.raw_peer import (
    RawPeer,
    associate_rq,
    command_numbers,
    command_status,
    message_pdus,
)
from tests.support.server import ServerUnderTest
from tests.support.services import free_tcp_port
from tests.support.tls import make_certificate

Archive = Callable[..., ServerUnderTest]
IMPLICIT = "1.2.840.10008.1.2"


@pytest.fixture
def output(tmp_path: Path) -> Path:
    """Where the destination (DCMTK storescp) writes what it receives."""
    folder = tmp_path / "storescp"
    folder.mkdir()
    return folder


def destination(port: int) -> dict[str, dict[str, object]]:
    return {"destinations": {"STORESCP": {"host": "127.0.0.1", "port": port, "timeout": 10}}}


def study_uid(server: ServerUnderTest, accession: str) -> str:
    keys = ["QueryRetrieveLevel=STUDY", f"AccessionNumber={accession}", "StudyInstanceUID"]
    return str(findscu(server.port, keys).matches[0].StudyInstanceUID)


def received(folder: Path) -> dict[str, pydicom.Dataset]:
    return {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(p) for p in folder.iterdir())}


def filed(server: ServerUnderTest) -> dict[str, pydicom.Dataset]:
    files = server.settings.accounts_dir.rglob("*.dcm")
    return {str(ds.SOPInstanceUID): ds for ds in map(pydicom.dcmread, files)}


def test_a_study_moves_to_its_destination_whole_and_as_filed(
    archive: Archive, output: Path
) -> None:
    with dcmtk.storescp(output) as port:
        server = archive(**destination(port))
        uid = study_uid(server, "ACC-A")
        moved = movescu(
            server.port, ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={uid}"], "STORESCP"
        )
    assert moved.final == "Success", moved.output
    arrived = received(output)
    originals = {k: v for k, v in filed(server).items() if v.StudyInstanceUID == uid}
    assert len(arrived) == 6 and arrived.keys() == originals.keys()
    for key, ds in arrived.items():
        assert ds.PixelData == originals[key].PixelData
        assert ds == originals[key]
    assert "Pending" in moved.output  # a pending response per sub-operation, with counts
    done = server.log_events("move.done")[0]
    assert (done["completed"], done["failed"]) == (6, 0)


def test_series_and_image_levels_move_only_what_they_name(archive: Archive, output: Path) -> None:
    with dcmtk.storescp(output) as port:
        server = archive(**destination(port))
        uid = study_uid(server, "ACC-A")
        series = findscu(
            server.port,
            [
                "QueryRetrieveLevel=SERIES",
                f"StudyInstanceUID={uid}",
                "SeriesInstanceUID",
                "SeriesNumber",
            ],
        )
        second = next(m for m in series.matches if m.SeriesNumber == 2).SeriesInstanceUID
        moved = movescu(
            server.port,
            ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={uid}", f"SeriesInstanceUID={second}"],
            "STORESCP",
        )
        assert moved.final == "Success", moved.output
        assert {ds.SeriesInstanceUID for ds in received(output).values()} == {second}
        assert len(received(output)) == 3
        one = next(iter(received(output)))
        for path in output.iterdir():
            path.unlink()
        moved = movescu(
            server.port,
            [
                "QueryRetrieveLevel=IMAGE",
                f"StudyInstanceUID={uid}",
                f"SeriesInstanceUID={second}",
                f"SOPInstanceUID={one}",
            ],
            "STORESCP",
        )
        assert moved.final == "Success", moved.output
        assert list(received(output)) == [one]


def test_a_calling_ae_bound_to_other_accounts_retrieves_nothing(
    archive: Archive, output: Path
) -> None:
    with dcmtk.storescp(output) as port:
        server = archive(
            receiver={"query": {"scopes": {"OUTSIDER": ["other"]}}}, **destination(port)
        )
        uid = study_uid(server, "ACC-A")
        keys = ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={uid}"]
        moved = movescu(server.port, keys, "STORESCP", calling_ae="OUTSIDER")
        assert moved.final == "Success", moved.output
        assert list(output.iterdir()) == []
        assert movescu(server.port, keys, "STORESCP").final == "Success"
        assert len(list(output.iterdir())) == 6


def test_a_destination_over_tls_gets_the_study(
    archive: Archive, output: Path, tmp_path: Path
) -> None:
    key, cert = make_certificate(tmp_path, "destination", address="127.0.0.1")
    port = free_tcp_port()
    tls = ("+tls", str(key), str(cert), "--ignore-peer-cert")
    with dcmtk.storescp_on(output, port, *tls):
        node = {"host": "127.0.0.1", "port": port, "tls": True, "ca": str(cert)}
        server = archive(destinations={"STORESCP": node})
        uid = study_uid(server, "ACC-C")
        moved = movescu(
            server.port, ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={uid}"], "STORESCP"
        )
    assert moved.final == "Success", moved.output
    assert len(list(output.iterdir())) == 3


def test_an_unknown_destination_or_a_missing_key_is_refused_with_the_reason(
    archive: Archive,
) -> None:
    server = archive(**destination(free_tcp_port()))
    uid = study_uid(server, "ACC-A")
    unknown = movescu(
        server.port, ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={uid}"], "NOBODY"
    )
    assert unknown.final == "Refused: MoveDestinationUnknown", unknown.output
    everything = movescu(server.port, ["QueryRetrieveLevel=STUDY"], "STORESCP")
    assert everything.final == "Error: DataSetDoesNotMatchSOPClass", everything.output
    reasons = [event["reason"] for event in server.log_events("move.refused")]
    assert reasons == [
        "unknown Move Destination 'NOBODY'",
        "a retrieval at STUDY level names its StudyInstanceUID",
    ]


def test_a_destination_that_is_down_gets_nothing_and_the_requester_is_told(
    archive: Archive, output: Path
) -> None:
    port = free_tcp_port()
    server = archive(**destination(port))
    uid = study_uid(server, "ACC-C")
    keys = ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={uid}"]
    down = movescu(server.port, keys, "STORESCP")
    assert down.final == "Refused: OutOfResourcesSubOperations", down.output
    done = server.log_events("move.done")[0]
    assert (done["completed"], done["failed"]) == (0, 3)
    assert "STORESCP@127.0.0.1" in done["reason"]
    with dcmtk.storescp_on(output, port):
        up = movescu(server.port, keys, "STORESCP")
    assert up.final == "Success", up.output
    assert len(received(output)) == 3


@pytest.mark.parametrize("model", ["-P", "-S"])
def test_patient_root_moves_a_patients_studies(archive: Archive, output: Path, model: str) -> None:
    with dcmtk.storescp(output) as port:
        server = archive(**destination(port))
        patients = findscu(
            server.port, ["QueryRetrieveLevel=PATIENT", "PatientName=Doe*", "PatientID"], model="-P"
        )
        patient_id = patients.matches[0].PatientID
        if model == "-P":
            moved = movescu(
                server.port,
                ["QueryRetrieveLevel=PATIENT", f"PatientID={patient_id}"],
                "STORESCP",
                model="-P",
            )
            assert moved.final == "Success", moved.output
            assert len(received(output)) == 3
        else:  # Study Root has no PATIENT level
            moved = movescu(
                server.port, ["QueryRetrieveLevel=PATIENT", f"PatientID={patient_id}"], "STORESCP"
            )
            assert moved.final == "Error: DataSetDoesNotMatchSOPClass", moved.output


def test_a_cancel_stops_the_sub_operations_and_says_what_remained(
    archive: Archive, output: Path
) -> None:
    with dcmtk.storescp(output) as port:
        server = archive(**destination(port))
        uid = study_uid(server, "ACC-A")
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = uid
        move = C_MOVE()
        move.MessageID, move.AffectedSOPClassUID, move.Priority = 3, STUDY_ROOT, 2
        move.MoveDestination = "STORESCP"
        move.Identifier = BytesIO(encode(query, IMPLICIT))
        cancel = C_CANCEL()
        cancel.MessageIDBeingRespondedTo = 3
        with RawPeer(server.port) as peer:
            peer.send(associate_rq(STUDY_ROOT, IMPLICIT))
            assert peer.pdu()[0] == 0x02
            peer.send(*message_pdus(move, C_MOVE_RQ), *message_pdus(cancel, C_CANCEL_RQ))
            final: dict[int, int] = {}
            while final.get(0x0900, 0xFF00) == 0xFF00:
                pdu_type, body = peer.pdu()
                assert pdu_type == 0x04, (pdu_type, body)
                if command_status(body) is not None:
                    final = command_numbers(body)
    assert final[0x0900] == 0xFE00
    remaining, completed = final[0x1020], final[0x1021]
    assert completed == len(list(output.iterdir())) and remaining == 6 - completed > 0
    assert server.log_events("move.cancelled")
