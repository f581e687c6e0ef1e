"""Forwarding by rule, to real nodes: DCMTK's storescp and Orthanc, each down first, then up;
everything arrives, once. A destination that refuses leaves failures `store-server forwards`
shows, and `--retry` sends again."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts

from tests.conftest import Backend
from tests.query.conftest import stored, study
from tests.support import dcmtk
from tests.support.cli import store_server
from tests.support.orthanc import orthanc
from tests.support.process import wait_until
from tests.support.server import ServerUnderTest, StartServer
from tests.support.services import free_tcp_port

QUICK = {"retry_backoff": 0.2, "retry_backoff_max": 0.5, "poll_interval": 0.2}


def forwarding(rules: list[dict[str, Any]], **destinations: int) -> dict[str, Any]:
    return {
        "forwarder": {"rules": rules, **QUICK},
        "destinations": {
            name: {"host": "127.0.0.1", "port": port, "timeout": 5}
            for name, port in destinations.items()
        },
    }


def states(server: ServerUnderTest) -> dict[str, int]:
    """What `store-server forwards --json` says, summed over rules."""
    environment = {
        **os.environ,
        "STORE_SERVER_DATA_DIR": str(server.settings.data_dir),
        "STORE_SERVER_DATABASE__URL": server.settings.database_url,
    }
    shown = store_server("forwards", "--json", env=environment)
    assert shown.returncode == 0, shown.stderr
    total: dict[str, int] = {}
    for row in json.loads(shown.stdout)["rules"]:
        for state in ("pending", "sending", "failed", "done"):
            total[state] = total.get(state, 0) + row.get(state, 0)
    return total


def test_every_filed_instance_reaches_a_destination_that_was_down_once(
    backend: Backend, start_server: StartServer, tmp_path: Path
) -> None:
    port = free_tcp_port()
    server = start_server(
        backend, **forwarding([{"name": "all", "destination": "STORESCP"}], STORESCP=port)
    )
    paths = study(tmp_path, "s", 2, 3, patient="Doe^Jane", AccessionNumber="ACC-F")
    stored(server, paths)
    wait_until(lambda: server.log_events("forward.batch"), 20, "a try while it is down")
    assert server.log_events("forward.batch")[0]["retry"] > 0
    assert states(server).get("done", 0) == 0
    output = tmp_path / "storescp"
    output.mkdir()
    with dcmtk.storescp_on(output, port, "--unique-filenames"):
        wait_until(lambda: len(list(output.iterdir())) >= 6, 30, "all six forwarded")
        wait_until(lambda: states(server).get("done") == 6, 20, "recorded as done")
    arrived = [pydicom.dcmread(path).SOPInstanceUID for path in output.iterdir()]
    assert sorted(arrived) == sorted(pydicom.dcmread(p).SOPInstanceUID for p in paths)  # once
    assert states(server) == {"pending": 0, "sending": 0, "failed": 0, "done": 6}
    # On the audit trail, as exports of the patient's instances, each instance once.
    exports = server.audit("exported")
    assert {e.detail["operation"] for e in exports} == {"forward"}
    assert {(e.detail["destination"], e.detail["patient_name"]) for e in exports} == {
        ("STORESCP", "Doe^Jane")
    }
    assert all(e.detail["destination_address"] == f"127.0.0.1:{port}" for e in exports)
    sent = [
        i["sop_instance_uid"] for e in exports for s in e.detail["studies"] for i in s["instances"]
    ]
    assert sorted(sent) == sorted(arrived) and sum(e.detail["count"] for e in exports) == 6


def test_a_study_rule_sends_completed_studies_that_meet_it_to_orthanc_once_it_is_up(
    start_server: StartServer, tmp_path: Path
) -> None:
    port = free_tcp_port()
    rules: list[dict[str, Any]] = [
        {
            "name": "mr-to-pacs",
            "destination": "ORTHANC",
            "when": "study",
            "modalities": ["MR"],
            "tags": {"StudyDescription": "Brain*"},
        },
        {"name": "ct-only", "destination": "ORTHANC", "when": "study", "modalities": ["CT"]},
    ]
    server = start_server(
        scansheet={"stable_age": 1.0, "poll_interval": 0.1, "thumbnail_workers": 1},
        **forwarding(rules, ORTHANC=port),
    )
    paths = study(tmp_path, "s", 2, 2, patient="Doe^Jane", AccessionNumber="ACC-O")
    stored(server, paths)
    wait_until(lambda: server.log_events("forward.batch"), 30, "a try while Orthanc is down")
    with orthanc(tmp_path / "orthanc", {}, dicom_port=port) as peer:
        wait_until(lambda: states(server).get("done") == 4, 60, "the study sent")
        instances = peer.call("GET", "/instances")
        [found] = peer.call("GET", "/studies?expand")
    assert len(instances) == 4  # each once
    assert found["MainDicomTags"]["AccessionNumber"] == "ACC-O"
    summary = states(server)
    assert summary["done"] == 4 and summary.get("failed", 0) == 0  # ct-only met nothing
    assert sum(event["jobs"] for event in server.log_events("forward.queued")) == 4


@contextmanager
def refusing_node(answers: list[int]) -> Iterator[int]:
    """A storage SCP that answers each C-STORE with the next of ``answers`` (then Success)."""
    ae = AE(ae_title="PICKY")
    ae.supported_contexts = AllStoragePresentationContexts
    lock = threading.Lock()

    def store(event: evt.Event) -> int:
        with lock:
            return answers.pop(0) if answers else 0x0000

    port = free_tcp_port()
    scp = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, store)])
    assert scp is not None
    try:
        yield port
    finally:
        scp.shutdown()


def test_an_instance_refused_too_often_fails_with_the_reason_and_is_retried_on_demand(
    start_server: StartServer, tmp_path: Path
) -> None:
    answers = [0xA700] * 4  # out of resources, twice for each of the two instances
    with refusing_node(answers) as port:
        settings = forwarding([{"name": "picky", "destination": "PICKY"}], PICKY=port)
        settings["forwarder"]["max_refusals"] = 2
        server = start_server(**settings)
        paths = study(tmp_path, "s", 1, 2, patient="Doe^Jane", AccessionNumber="ACC-P")
        stored(server, paths)
        wait_until(lambda: states(server).get("failed") == 2, 30, "failed after two refusals")
        environment = {
            **os.environ,
            "STORE_SERVER_DATA_DIR": str(server.settings.data_dir),
        }
        shown = store_server("forwards", env=environment)
        assert "refused: 0xA700" in shown.stdout, shown.stdout
        again = store_server("forwards", "--retry", env=environment)
        assert again.stdout.startswith("2 failed instances will be sent again")
        wait_until(lambda: states(server).get("done") == 2, 30, "sent once accepted")


def test_a_rule_to_an_unknown_destination_stops_start_up_naming_it(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "STORE_SERVER_DATA_DIR": str(tmp_path / "data"),
        "STORE_SERVER_FORWARDER__RULES": '[{"name": "x", "destination": "NOWHERE"}]',
    }
    done = store_server("run", env=environment, timeout=60)
    assert done.returncode != 0
    assert "forwarder.rules[0].destination: 'NOWHERE' is not one of [destinations]" in done.stderr


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"accounts": ["Guest/Smith_John"]}, True),
        ({"accounts": ["other"]}, False),
        ({"calling_aes": ["STORESCU"]}, True),
        ({"modalities": ["mr"]}, True),
        ({"modalities": ["CT"]}, False),
        ({"tags": {"SeriesDescription": "T? axial"}}, True),
        ({"tags": {"SeriesDescription": "t1*"}}, False),  # as written, like the standard's
        ({"tags": {"PatientAge": "*"}}, False),  # absent: no value to match
    ],
)
def test_rules_meet_what_they_name(rule: dict[str, Any], expected: bool, tmp_path: Path) -> None:
    from services.forwarder.rules import Facts, met
    from services.forwarder.settings import ForwardRule

    values = {"SeriesDescription": ["T1 axial"], "Modality": ["MR"]}
    facts = Facts(
        "Guest/Smith_John", frozenset({"STORESCU"}), frozenset({"MR"}), lambda k: values.get(k, [])
    )
    assert met(ForwardRule(name="r", destination="X", **rule), facts) is expected
