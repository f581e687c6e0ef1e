"""``store-server sheet STUDY_UID`` writes a sheet on demand; ``--stable-age`` sets the age;
``store-server study UID`` shows each series' parameters as the sheet does."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from services.cli.main import build_parser
from services.cli.options import settings_from_args
from tests.scansheet.conftest import (
    FAST,
    make_ct_instance,
    make_study,
    send_all,
    sheet_json_path,
    wait_for_sheet,
)
from tests.scansheet.printing import pdf_page_size
from tests.support.cli import store_server
from tests.support.process import wait_until
from tests.support.server import ServerUnderTest, server_settings
from tests.support.services import free_tcp_port

# The MR series' Pixel Spacing (0028,0030) is 0.9\0.9: between rows, then between columns.
PIXEL_SPACING = "0.9 \N{MULTIPLICATION SIGN} 0.9 mm"


def test_sheet_writes_a_study_sheet_on_demand(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = server_settings(data, free_tcp_port(), scansheet={**FAST, "stable_age": 600.0})
    study_uid = generate_uid()
    with ServerUnderTest(settings) as server:
        send_all(server, make_study(tmp_path / "in", study_uid, series=2, per_series=2))
        wait_until(
            lambda: sum(int(e["size"]) for e in server.log_events("index.batch_written")) >= 4,
            20,
            "4 instances indexed",
        )
        assert sheet_json_path(server) is None  # the stable age is far away

    done = store_server("sheet", study_uid, "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    printed = [Path(line) for line in done.stdout.splitlines()]
    assert [path.name for path in printed] == [
        "scansheet.html",
        "scansheet.pdf",
        "scansheet.png",
        "scansheet.json",
    ]
    assert all(path.is_file() for path in printed)
    sheet = json.loads(printed[3].read_text(encoding="utf-8"))
    assert (sheet["study"]["instances"], len(sheet["series"])) == ("4", 2)
    assert pdf_page_size(printed[1]) == pytest.approx((595.3, 841.9), abs=0.5)  # A4

    # --pdf --open: the PDF, on the paper asked for, handed to the desktop's viewer.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opened = tmp_path / "opened"
    viewer = bin_dir / "xdg-open"
    viewer.write_text(f'#!/bin/sh\necho "$@" > {opened}\n')
    viewer.chmod(0o755)
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    args = ["sheet", study_uid, "--pdf", "--open", "--paper", "Letter", "--data-dir", str(data)]
    shown = store_server(*args, env=environment)
    assert shown.returncode == 0, shown.stderr
    [pdf] = [Path(line) for line in shown.stdout.splitlines()]
    assert pdf.name == "scansheet.pdf" and opened.read_text().strip() == str(pdf)
    assert pdf_page_size(pdf) == pytest.approx((612, 792), abs=0.5)  # Letter
    no_viewer = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    alone = store_server("sheet", study_uid, "--open", "--data-dir", str(data), env=no_viewer)
    assert alone.returncode == 1 and "no xdg-open on this machine" in alone.stderr

    unknown = store_server("sheet", "1.2.3.999", "--data-dir", str(data))
    assert unknown.returncode == 1
    assert "no indexed study 1.2.3.999" in unknown.stderr


@pytest.mark.parametrize("command", ["run", "scansheet"])
def test_stable_age_flag(command: str) -> None:
    args = build_parser().parse_args([command, "--stable-age", "7.5"])
    assert settings_from_args(args).scansheet.stable_age == 7.5


def test_a_bad_stable_age_is_refused_naming_it() -> None:
    refused = store_server("scansheet", "--stable-age", "0", "--bus", "amqp://nowhere/")
    assert refused.returncode == 2
    assert "scansheet.stable_age" in refused.stderr


def test_study_shows_each_series_with_the_parameters_of_its_modality(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = server_settings(data, free_tcp_port(), scansheet=FAST)
    study_uid = generate_uid()
    with ServerUnderTest(settings) as server:
        mr = make_study(tmp_path / "in", study_uid, series=1, per_series=3)
        send_all(server, [*mr, make_ct_instance(tmp_path / "in", study_uid)])
        sheet = wait_for_sheet(server, series="2")

    shown = store_server("study", study_uid, "--data-dir", str(data))
    assert shown.returncode == 0, shown.stderr
    [mr_row] = [line for line in shown.stdout.splitlines() if "T1 axial" in line]
    [ct_row] = [line for line in shown.stdout.splitlines() if "Head CT" in line]
    assert "TR 600 ms" in mr_row and "TE 11 ms" in mr_row and "Flip 16°" in mr_row
    assert f"Pixel spacing {PIXEL_SPACING}" in mr_row
    assert "kVp 120" in ct_row and "mAs 250" in ct_row and "Kernel H30s" in ct_row
    assert "TR " not in ct_row and "TE " not in ct_row

    as_json = store_server("study", study_uid, "--json", "--data-dir", str(data))
    detail = json.loads(as_json.stdout)
    on_sheet = {row["series_instance_uid"]: row["parameters"] for row in sheet["series"]}
    assert {row["series_instance_uid"]: row["parameters"] for row in detail["series"]} == on_sheet
    assert on_sheet[detail["series"][0]["series_instance_uid"]]["Pixel spacing"] == PIXEL_SPACING
