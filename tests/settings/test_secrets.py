"""Secrets as containers pass them: any setting from a file named by its variable with _FILE;
and a well-known default password refused for a server on another host."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.settings import load_settings
from shared.settings import SettingsError


def secret(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    path.chmod(0o400)
    return path


def test_urls_with_passwords_come_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = secret(tmp_path, "bus", "amqp://store:s3cret-broker@rabbit:5672/\n")
    index = secret(tmp_path, "index", "postgresql://store:s3cret-index@db:5432/store\r\n")
    monkeypatch.setenv("STORE_SERVER_BUS__URL_FILE", str(bus))
    monkeypatch.setenv("STORE_SERVER_DATABASE__URL_FILE", str(index))
    monkeypatch.setenv("STORE_SERVER_LOG__TO_FILE", "false")  # a setting that ends in _FILE
    settings = load_settings()
    assert settings.bus.url == "amqp://store:s3cret-broker@rabbit:5672/"
    assert settings.database.url == "postgresql://store:s3cret-index@db:5432/store"
    assert settings.log.to_file is False


def test_a_nested_table_setting_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORE_SERVER_DESTINATIONS__PACS__HOST", "10.0.0.9")
    monkeypatch.setenv(
        "STORE_SERVER_DESTINATIONS__PACS__PORT_FILE", str(secret(tmp_path, "p", "104"))
    )
    # The environment gives names in lower case: titles are kept in upper case.
    assert load_settings().destinations["PACS"].port == 104


def test_a_setting_given_twice_or_a_file_unreadable_stops_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = secret(tmp_path, "bus", "amqp://store:s3cret-broker@rabbit:5672/")
    monkeypatch.setenv("STORE_SERVER_BUS__URL_FILE", str(bus))
    monkeypatch.setenv("STORE_SERVER_BUS__URL", "amqp://other@rabbit/")
    with pytest.raises(SettingsError, match="STORE_SERVER_BUS__URL and STORE_SERVER_BUS__URL_FILE"):
        load_settings()
    monkeypatch.delenv("STORE_SERVER_BUS__URL")
    monkeypatch.setenv("STORE_SERVER_BUS__URL_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="STORE_SERVER_BUS__URL_FILE: cannot read") as raised:
        load_settings()
    assert "No such file" in str(raised.value)


def test_a_file_whose_value_is_wrong_is_reported_without_its_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "STORE_SERVER_BUS__URL_FILE", str(secret(tmp_path, "bus", "s3cret-not-a-url"))
    )
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "bus.url" in str(raised.value)
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize(
    ("setting", "url", "refused"),
    [
        ("bus", "amqp://guest:guest@rabbitmq:5672/", True),
        ("bus", "amqp://guest:guest@10.1.2.3:5672/", True),
        ("bus", "amqp://guest:guest@127.0.0.1:5672/", False),  # RabbitMQ's own rule
        ("bus", "amqp://guest:guest@localhost/", False),
        ("bus", "amqp://store:long-and-own@rabbitmq:5672/", False),
        ("database", "postgresql://postgres:postgres@db:5432/store", True),
        ("database", "postgresql://postgres:postgres@[::1]:5432/store", False),
        ("database", "postgresql://store@db:5432/store", False),  # no password: the server's say
    ],
)
def test_a_default_password_is_refused_for_a_server_elsewhere(
    setting: str, url: str, refused: bool
) -> None:
    if refused:
        with pytest.raises(SettingsError, match=f"{setting}.url: the password is"):
            load_settings(None, {setting: {"url": url}})
    else:
        assert getattr(load_settings(None, {setting: {"url": url}}), setting).url == url
