"""No patient name, ID or birth date in the log at info level: study folders are pseudonyms and
paths are relative to the accounts root; at debug level an administrator sees them whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.log import pseudonym
from tests.query.conftest import stored, study
from tests.support.process import wait_until
from tests.support.server import StartServer

FAST = {"stable_age": 1.0, "poll_interval": 0.1, "thumbnail_workers": 1}
PATIENT = "Zyxwvut^Quinella"


@pytest.mark.parametrize("level", ["info", "debug"])
def test_the_info_log_names_no_patient(
    start_server: StartServer, tmp_path: Path, level: str
) -> None:
    server = start_server(scansheet=FAST, log={"level": level})
    paths = study(
        tmp_path, "s", 2, 2, patient=PATIENT, AccessionNumber="ACC-Q", PatientBirthDate="19531107"
    )
    stored(server, paths)
    wait_until(lambda: server.log_events("scansheet.written"), 30, "the sheet written")
    assert server.settings.log_file is not None
    text = server.settings.log_file.read_text()
    names = ("Zyxwvut", "zyxwvut", "Quinella", "19531107", str(server.settings.accounts_dir))
    if level == "info":
        assert [name for name in names if name in text] == []
        folder = "Zyxwvut_Quinella_20261120_ACC-Q"
        filed = server.log_events("instance.filed")[0]["path"]
        assert filed.startswith(f"Guest/Smith_John/{pseudonym(folder)}/Dicom/")
    else:
        assert "Zyxwvut_Quinella" in text  # at debug level, as it is
