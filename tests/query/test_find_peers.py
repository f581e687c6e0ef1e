"""C-FIND as other peers and hostile ones use it: character sets both ways (pynetdicom's SCU),
cancel, a calling AE bound to accounts, too many matches, an index that cannot be read, an
identifier that cannot be decoded."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.dimse_messages import C_CANCEL_RQ, C_FIND_RQ
from pynetdicom.dimse_primitives import C_CANCEL, C_FIND

from services.receiver.find import STUDY_ROOT
from services.receiver.identifier import encode
from tests.query.conftest import stored, study
from tests.support import dcmtk
from tests.support.query import findscu
from tests.support.raw_peer import RawPeer, associate_rq, command_status, message_pdus
from tests.support.server import ServerUnderTest, server_settings
from tests.support.services import sample

Archive = Callable[..., ServerUnderTest]
PENDING, CANCEL = 0xFF00, 0xFE00
IMPLICIT = "1.2.840.10008.1.2"


def identified(find: C_FIND, identifier: bytes) -> C_FIND:
    find.Identifier = BytesIO(identifier)
    return find


def pynetdicom_find(
    port: int, identifier: Dataset, calling_ae: str = "PYNETDICOM"
) -> tuple[list[Dataset], int]:
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(STUDY_ROOT)
    assoc = ae.associate("127.0.0.1", port, ae_title="STORE_SERVER")
    assert assoc.is_established
    matches: list[Dataset] = []
    final = -1
    try:
        for status, found in assoc.send_c_find(identifier, STUDY_ROOT):
            if status.Status in (0xFF00, 0xFF01) and found is not None:
                matches.append(found)
            else:
                final = int(status.Status)
    finally:
        assoc.release()
    return matches, final


def test_names_are_matched_and_answered_in_the_querys_character_set_or_utf8(
    archive: Archive, tmp_path: Path
) -> None:
    server = archive()
    stored(
        server,
        study(
            tmp_path,
            "greek",
            1,
            1,
            patient="Παπαδόπουλος^Γιάννης",
            SpecificCharacterSet="ISO_IR 192",
            AccessionNumber="ACC-G",
        ),
    )
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 100"
    query.QueryRetrieveLevel = "STUDY"
    query.PatientName = "MÜLLER*"
    query.AccessionNumber = ""
    matches, final = pynetdicom_find(server.port, query)
    assert final == 0
    assert sorted(m.AccessionNumber for m in matches) == ["ACC-A", "ACC-B"]
    assert {m.SpecificCharacterSet for m in matches} == {"ISO_IR 100"}
    assert {str(m.PatientName) for m in matches} == {"Müller^Hans"}

    query.PatientName = ""
    query.AccessionNumber = "ACC-G"
    matches, final = pynetdicom_find(server.port, query)
    assert final == 0 and len(matches) == 1
    # Latin-1 cannot carry Greek: the answer comes in UTF-8, and says so.
    assert matches[0].SpecificCharacterSet == "ISO_IR 192"
    assert str(matches[0].PatientName) == "Παπαδόπουλος^Γιάννης"


def test_a_cancel_ends_the_query_with_status_cancel(archive: Archive) -> None:
    server = archive()
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.SOPInstanceUID = ""
    find = C_FIND()
    find.MessageID, find.AffectedSOPClassUID, find.Priority = 5, STUDY_ROOT, 2
    cancel = C_CANCEL()
    cancel.MessageIDBeingRespondedTo = 5
    with RawPeer(server.port) as peer:
        peer.send(associate_rq(STUDY_ROOT, IMPLICIT))
        assert peer.pdu()[0] == 0x02
        # The cancel right behind the request: heard before the first match is sent.
        peer.send(
            *message_pdus(identified(find, encode(query, IMPLICIT)), C_FIND_RQ),
            *message_pdus(cancel, C_CANCEL_RQ),
        )
        statuses: list[int | None] = []
        while not statuses or statuses[-1] in (None, PENDING):
            pdu_type, body = peer.pdu()
            assert pdu_type == 0x04, (pdu_type, body)
            statuses.append(command_status(body))
    assert statuses[-1] == CANCEL
    assert server.log_events("request.cancel")[0]["running"] is True
    assert server.log_events("find.cancelled")


def test_a_calling_ae_bound_to_accounts_finds_only_their_studies(archive: Archive) -> None:
    server = archive(
        receiver={"query": {"scopes": {"WS_SMITH": ["Guest/Smith_John"], "WS_OTHER": ["Other"]}}}
    )
    keys = ["QueryRetrieveLevel=STUDY", "AccessionNumber"]
    assert findscu(server.port, keys, calling_ae="WS_SMITH").values("AccessionNumber") == [
        "ACC-A",
        "ACC-B",
        "ACC-C",
    ]
    other = findscu(server.port, keys, calling_ae="WS_OTHER")
    assert other.final == "Success" and other.matches == []
    images = findscu(
        server.port, ["QueryRetrieveLevel=IMAGE", "SOPInstanceUID"], calling_ae="WS_OTHER"
    )
    assert images.matches == []
    assert len(findscu(server.port, keys, calling_ae="ANYONE").matches) == 3


def test_more_matches_than_allowed_are_refused_with_the_reason(archive: Archive) -> None:
    server = archive(receiver={"query": {"max_matches": 2}})
    found = findscu(server.port, ["QueryRetrieveLevel=STUDY", "AccessionNumber"])
    assert found.matches == [] and found.final == "Refused: OutOfResources", found.output
    assert server.log_events("query.too_many")[0]["reason"] == "over 2 matches: narrow the query"
    narrowed = findscu(
        server.port, ["QueryRetrieveLevel=STUDY", "PatientName=Doe*", "AccessionNumber"]
    )
    assert narrowed.values("AccessionNumber") == ["ACC-C"]


def test_an_index_that_cannot_be_read_fails_queries_and_stores_go_on(
    tmp_path: Path, free_port: int
) -> None:
    # A receiver on its own whose index does not exist (yet): it starts, stores, and says why
    # it cannot answer a query.
    missing = f"sqlite:///{tmp_path}/nowhere/index.sqlite"
    settings = server_settings(tmp_path / "data", free_port, database_url=missing)
    with ServerUnderTest(settings, roles=("receiver",), index=False) as server:
        found = findscu(server.port, ["QueryRetrieveLevel=STUDY", "AccessionNumber"])
        assert found.matches == [] and found.final == "Failed: UnableToProcess", found.output
        reason = server.log_events("query.failed")[0]["reason"]
        assert reason.startswith("the index cannot be read: OperationalError"), reason
        outcome = dcmtk.storescu(server.port, [sample("MR_small.dcm")])
        assert outcome.store_statuses == ["Success"], outcome.output


def test_an_undecodable_identifier_is_refused_and_the_association_goes_on(archive: Archive) -> None:
    server = archive()
    find = C_FIND()
    find.MessageID, find.AffectedSOPClassUID, find.Priority = 1, STUDY_ROOT, 2
    good = Dataset()
    good.QueryRetrieveLevel = "STUDY"
    good.AccessionNumber = "ACC-C"
    with RawPeer(server.port) as peer:
        peer.send(associate_rq(STUDY_ROOT, IMPLICIT))
        assert peer.pdu()[0] == 0x02
        # (0010,0010) declaring 4 GiB, then nothing.
        peer.send(*message_pdus(identified(find, b"\x10\x00\x10\x00\xfe\xff\xff\xff"), C_FIND_RQ))
        assert command_status(peer.pdu()[1]) == 0xA900
        find.MessageID = 2
        peer.send(*message_pdus(identified(find, encode(good, IMPLICIT)), C_FIND_RQ))
        statuses = [command_status(peer.pdu()[1]) for _ in range(3)]
    assert statuses == [PENDING, None, 0x0000]
    assert "undecodable identifier" in server.log_events("query.refused")[0]["reason"]
