"""A server holding a few studies, queried as a workstation would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from tests.conftest import Backend
from tests.support import dcmtk
from tests.support.filing import counts, mr_study, wait_for_instances
from tests.support.server import ServerUnderTest, StartServer

Edit = Callable[[Dataset], None]


def study(
    tmp_path: Path, name: str, series_count: int, per_series: int, **values: Any
) -> list[Path]:
    """An MR study of ``patient`` written as files, each dataset given ``values``."""
    folder = tmp_path / "studies" / name
    folder.mkdir(parents=True)
    paths = []
    for index, ds in enumerate(mr_study(series_count, per_series, patient=values.pop("patient"))):
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"{index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def stored(server: ServerUnderTest, paths: list[Path], *options: str) -> None:
    """Send ``paths`` with storescu (and its ``options``) and wait until the index holds
    them."""
    assert server.running is not None
    before = server.call(counts(server.running.index))[2]
    outcome = dcmtk.storescu(server.port, paths, options=options)
    assert set(outcome.store_statuses) == {"Success"}, outcome.output
    server.call(wait_for_instances(server.running.index, before + len(paths)))


@pytest.fixture
def archive(
    backend: Backend, start_server: StartServer, tmp_path: Path
) -> Callable[..., ServerUnderTest]:
    """A server on ``backend`` holding three studies of two patients (one with an accented
    name), started with ``overrides``."""

    def started(**overrides: Any) -> ServerUnderTest:
        server = start_server(backend, **overrides)
        paths = study(
            tmp_path,
            "a",
            2,
            3,
            patient="Müller^Hans",
            StudyDate="20260110",
            AccessionNumber="ACC-A",
            SpecificCharacterSet="ISO_IR 100",
        )
        paths += study(
            tmp_path,
            "b",
            1,
            2,
            patient="Müller^Hans",
            StudyDate="20260215",
            AccessionNumber="ACC-B",
            SpecificCharacterSet="ISO_IR 100",
            Modality="CT",
        )
        paths += study(
            tmp_path,
            "c",
            3,
            1,
            patient="Doe^Jane",
            StudyDate="20260301",
            AccessionNumber="ACC-C",
            StudyTime="153000",
        )
        stored(server, paths)
        return server

    return started
