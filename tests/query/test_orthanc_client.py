"""Orthanc, the archive a site may run beside us, as our query/retrieve client through its REST
API: it finds a study on us (C-FIND), then pulls it to itself (C-MOVE)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.support.orthanc import orthanc
from tests.support.server import ServerUnderTest

Archive = Callable[..., ServerUnderTest]


def test_orthanc_finds_a_study_on_us_and_retrieves_it(
    archive: Archive, tmp_path: Path, free_port: int
) -> None:
    with orthanc(tmp_path / "orthanc", {"store": ("STORE_SERVER", free_port)}) as peer:
        server = archive(destinations={"ORTHANC": {"host": "127.0.0.1", "port": peer.dicom_port}})
        assert server.port == free_port
        query = {
            "Level": "Study",
            "Query": {"PatientName": "muller*", "StudyDate": "20260101-20260131"},
        }
        asked = peer.call("POST", "/modalities/store/query", json.dumps(query).encode())
        answers = peer.call("GET", f"/queries/{asked['ID']}/answers?expand&simplify")
        assert [answer["AccessionNumber"] for answer in answers] == ["ACC-A"]
        assert answers[0]["PatientName"] == "Müller^Hans"
        retrieved = peer.call("POST", f"/queries/{asked['ID']}/retrieve", b"ORTHANC")
        assert retrieved is not None
        studies = peer.call("GET", "/studies?expand")
        assert [study["MainDicomTags"]["AccessionNumber"] for study in studies] == ["ACC-A"]
        instances = peer.call("GET", f"/studies/{studies[0]['ID']}/instances")
        assert len(instances) == 6
