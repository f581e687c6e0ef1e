"""Settings: flags > STORE_SERVER_* environment > TOML file > defaults; bad values name the
setting and stop start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.settings import SettingsError, load_settings
from tests.support.cli import store_server


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("STORE_SERVER_") and not name.startswith("STORE_SERVER_TEST_"):
            monkeypatch.delenv(name)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "store-server.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_embedded_server(tmp_path: Path) -> None:
    settings = load_settings(None, {"data_dir": tmp_path})
    assert settings.receiver.ae_title == "STORE_SERVER"
    assert settings.receiver.port == 11112
    assert settings.bus.url == "memory://"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/index.sqlite"
    assert settings.log_file == tmp_path / "logs" / "store-server.log"


@pytest.mark.parametrize(
    ("log", "written_to"),
    [
        ({"to_file": False}, None),  # a container: stdout only
        ({"to_file": False, "file": "/var/log/s.log"}, Path("/var/log/s.log")),  # asked for
        ({"file": "/var/log/s.log"}, Path("/var/log/s.log")),
    ],
)
def test_the_log_file_is_written_when_configured_or_by_default(
    tmp_path: Path, log: dict[str, object], written_to: Path | None
) -> None:
    assert load_settings(None, {"data_dir": tmp_path, "log": log}).log_file == written_to


def test_precedence_flags_then_environment_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(
        tmp_path,
        '[receiver]\nport = 104\nae_title = "FROM_FILE"\nmax_associations = 7\n'
        "[bus]\nprefetch = 64\n",
    )
    monkeypatch.setenv("STORE_SERVER_RECEIVER__AE_TITLE", "FROM_ENV")
    monkeypatch.setenv("STORE_SERVER_RECEIVER__PORT", "2104")

    settings = load_settings(config, {"receiver": {"port": 3104}})

    assert settings.receiver.port == 3104  # flag
    assert settings.receiver.ae_title == "FROM_ENV"  # environment over file
    assert settings.receiver.max_associations == 7  # file over default
    assert settings.bus.prefetch == 64
    assert settings.bus.url == "memory://"  # default


def test_allowed_callers_from_environment_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, '[receiver]\nallowed_callers = ["CT1", "MR2@10.0.0.5"]\n')
    from_file = load_settings(config).receiver.allowed_callers
    assert [(c.ae_title, c.host) for c in from_file] == [("CT1", None), ("MR2", "10.0.0.5")]

    monkeypatch.setenv("STORE_SERVER_RECEIVER__ALLOWED_CALLERS", '["US3@10.0.0.9"]')
    from_env = load_settings(config).receiver.allowed_callers
    assert [(c.ae_title, c.host) for c in from_env] == [("US3", "10.0.0.9")]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"receiver": {"port": 70000}}, "receiver.port (environment STORE_SERVER_RECEIVER__PORT)"),
        ({"receiver": {"ae_title": "A" * 17}}, "receiver.ae_title"),
        ({"receiver": {"ae_title": "BAD\\AE"}}, "receiver.ae_title"),
        ({"bus": {"url": "redis://x"}}, "bus.url"),
        ({"database": {"url": "mysql://x"}}, "database.url"),
        ({"receiver": {"tls": {"port": 2762}}}, "receiver.tls"),
        ({"receiver": {"max_associations": 0}}, "receiver.max_associations"),
    ],
)
def test_bad_value_names_the_setting(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(None, overrides)
    assert named in str(raised.value)


def test_typo_in_the_file_is_reported(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[receiver]\nportt = 104\n")
    with pytest.raises(SettingsError, match=r"receiver\.portt .*Extra inputs"):
        load_settings(config)


def test_missing_or_broken_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"--config .*absent\.toml: no such file"):
        load_settings(tmp_path / "absent.toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(write_config(tmp_path, "[receiver\n"))


def test_bad_setting_stops_the_command_with_its_name(tmp_path: Path) -> None:
    result = store_server("run", "--data-dir", str(tmp_path), "--port", "99999")
    assert result.returncode == 2
    assert "receiver.port (environment STORE_SERVER_RECEIVER__PORT)" in result.stderr
    assert not (tmp_path / "spool").exists()  # stopped before doing anything


def test_receiver_alone_refuses_the_in_process_bus(tmp_path: Path) -> None:
    result = store_server("receiver", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "bus.url: the receiver on its own needs an amqp:// bus" in result.stderr


def test_the_example_file_is_valid_and_holds_the_defaults() -> None:
    example = Path(__file__).parents[2] / "docs" / "store-server.example.toml"
    assert load_settings(example).model_dump() == load_settings(None).model_dump()
