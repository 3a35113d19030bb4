"""compose/docker-compose.yml stays a valid Compose file for machines with Docker.

`docker compose config` needs the compose plugin, which CI does not have, so
the structure that plugin checks first is checked here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "compose" / "docker-compose.yml"


def _load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def test_services_pin_the_versions_we_test_against() -> None:
    services = _load()["services"]
    assert services["kafka"]["image"] == "apache/kafka:4.3.1"
    assert services["postgres"]["image"].startswith("postgres:")


def test_every_service_has_a_healthcheck_and_ports() -> None:
    for name, service in _load()["services"].items():
        assert "test" in service["healthcheck"], name
        assert service["ports"], name


def test_no_obsolete_top_level_version_key() -> None:
    assert "version" not in _load()
