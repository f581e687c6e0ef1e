"""``docker-compose.yml``: valid, and what a PACS host needs from it, as compose renders it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.settings import load_settings
from tests.support.deploy import COMPOSE_TLS, SECRETS, ComposeError, render_compose

ROLES = ("receiver", "router", "indexer", "scansheet", "forwarder")
INDEX_USERS = ("router", "indexer", "scansheet", "forwarder")
DATA = "/var/lib/store-server"


@pytest.fixture
def rendered(tmp_path: Path) -> dict[str, Any]:
    return render_compose(tmp_path / ".env", SECRETS)


def services(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = rendered["services"]
    return found


def test_the_services_and_how_each_role_is_started(rendered: dict[str, Any]) -> None:
    found = services(rendered)
    assert set(found) == {"rabbitmq", "postgres", "migrate", *ROLES}
    assert found["migrate"]["command"] == ["store-server", "db", "upgrade"]
    for role in ROLES:
        service = found[role]
        assert service["command"] == ["store-server", role]
        # The image's health check and `store-server health` read the role from here.
        assert service["environment"]["STORE_SERVER_ROLE"] == role
        assert service["healthcheck"]["test"] == ["CMD", "store-server", "health"]
        assert service["restart"] == "unless-stopped"
        assert f"data:{DATA}:rw" in service["volumes"]
        assert service["environment"]["STORE_SERVER_DATA_DIR"] == DATA
        assert service["environment"]["STORE_SERVER_LOG__TO_FILE"] == "false"
        assert service["image"] == found["migrate"]["image"]  # one image for every role
    assert found["migrate"]["restart"] == "no"


def test_the_dicom_port_is_104_on_the_host_and_only_the_receiver_publishes(
    rendered: dict[str, Any], tmp_path: Path
) -> None:
    found = services(rendered)
    assert found["receiver"]["ports"] == [{"published": 104, "target": 11112}]
    assert found["receiver"]["environment"]["STORE_SERVER_RECEIVER__PORT"] == "11112"
    # Scalable: nothing that two routers could not both have.
    assert not {"ports", "container_name", "hostname"} & set(found["router"])
    assert [name for name, service in found.items() if "ports" in service] == ["receiver"]

    moved = services(render_compose(tmp_path / "moved.env", {**SECRETS, "DICOM_PORT": "11104"}))
    assert moved["receiver"]["ports"] == [{"published": 11104, "target": 11112}]


def test_tls_adds_its_port_and_certificates(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    variables = {**SECRETS, "TLS_DIR": str(tls)}
    receiver = services(render_compose(tmp_path / ".env", variables, COMPOSE_TLS))["receiver"]
    assert {"published": 2762, "target": 2762} in receiver["ports"]
    assert f"{tls}:/etc/store-server/tls:ro" in receiver["volumes"]
    environment = receiver["environment"]
    assert environment["STORE_SERVER_RECEIVER__TLS__PORT"] == "2762"
    assert environment["STORE_SERVER_RECEIVER__TLS__CERT"].startswith("/etc/store-server/tls/")
    with pytest.raises(ComposeError, match="TLS_DIR"):
        render_compose(tmp_path / "no-tls-dir.env", SECRETS, COMPOSE_TLS)


def test_start_up_order_waits_for_health_and_the_migration(rendered: dict[str, Any]) -> None:
    found = services(rendered)
    healthy = {"condition": "service_healthy"}
    for role in INDEX_USERS:
        assert found[role]["depends_on"] == {
            "rabbitmq": healthy,
            "postgres": healthy,
            "migrate": {"condition": "service_completed_successfully"},
        }
    assert found["receiver"]["depends_on"] == {"rabbitmq": healthy}
    assert found["migrate"]["depends_on"] == {"postgres": healthy}
    for dependency in ("rabbitmq", "postgres"):
        assert found[dependency]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
        assert found[dependency]["restart"] == "unless-stopped"


def test_broker_and_index_keep_their_data_in_named_volumes(rendered: dict[str, Any]) -> None:
    found = services(rendered)
    assert set(rendered["volumes"]) == {"data", "postgres", "rabbitmq"}
    assert "postgres:/var/lib/postgresql/data:rw" in found["postgres"]["volumes"]
    assert "rabbitmq:/var/lib/rabbitmq:rw" in found["rabbitmq"]["volumes"]
    # RabbitMQ stores its queues under rabbit@<hostname>: it must not change on re-creation.
    assert found["rabbitmq"]["hostname"] == "rabbitmq"


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(tmp_path: Path, secret: str) -> None:
    variables = {name: value for name, value in SECRETS.items() if name != secret}
    with pytest.raises(ComposeError, match=f"set {secret} in .env"):
        render_compose(tmp_path / ".env", variables)
    with pytest.raises(ComposeError, match=secret):
        render_compose(tmp_path / "empty.env", {**variables, secret: ""})


def test_the_secrets_reach_the_services_that_need_them_and_no_other(
    rendered: dict[str, Any],
) -> None:
    found = services(rendered)
    bus_url = "amqp://store-server:broker-secret@rabbitmq:5672/"
    index_url = "postgresql://store-server:index-secret@postgres:5432/store-server"
    for role in ROLES:
        assert found[role]["environment"]["STORE_SERVER_BUS__URL"] == bus_url
    for role in (*INDEX_USERS, "migrate"):
        assert found[role]["environment"]["STORE_SERVER_DATABASE__URL"] == index_url
    # The DICOM-facing process never holds the index's password: it queries as a role that
    # can only read, which migrate makes.
    receiver = found["receiver"]["environment"]
    assert "STORE_SERVER_DATABASE__URL" not in receiver
    assert receiver["STORE_SERVER_RECEIVER__QUERY__DATABASE_URL"] == (
        "postgresql://store-server-query:query-secret@postgres:5432/store-server"
    )
    assert found["migrate"]["environment"]["STORE_SERVER_DATABASE__QUERY_ROLE"] == (
        "store-server-query"
    )
    assert found["migrate"]["environment"]["STORE_SERVER_DATABASE__QUERY_PASSWORD"] == (
        "query-secret"
    )
    assert not any("query-secret" in str(found[role]) for role in INDEX_USERS)
    assert found["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"] == "broker-secret"
    assert found["postgres"]["environment"]["POSTGRES_PASSWORD"] == "index-secret"


def test_every_setting_the_compose_file_gives_is_one_the_server_accepts(
    rendered: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A misspelt STORE_SERVER_* variable would be a setting silently left at its default;
    the settings refuse unknown names, so each role's environment is built as it would be."""
    for name, service in services(rendered).items():
        if name in ("rabbitmq", "postgres"):
            continue
        with monkeypatch.context() as patch:
            for variable, value in service["environment"].items():
                patch.setenv(variable, str(value))
            patch.setenv("STORE_SERVER_DATA_DIR", str(tmp_path))  # the volume, here
            settings = load_settings()
        assert settings.log_file is None, name
        if name == "scansheet":
            assert settings.scansheet.stable_age == 60
        if name == "receiver":
            assert (settings.receiver.port, settings.receiver.ae_title) == (11112, "STORE_SERVER")
