"""``deploy/compose.yaml``, its config files and the Dockerfile agree with each other and with
what the services read. (tests/e2e/deploy starts the services from them.)"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from spider.core.config import structure_config
from spider.em.config import load_em_config
from spider.scheduler.config import SchedulerConfig
from spider.storage.config import StorageConfig
from spider.storage.db import MariaDbConfig
from tests.deploy_files import (
    DATABASE_SERVICE,
    DEPLOY,
    DOCKERFILE,
    ENV_EXAMPLE,
    LISTEN_ALL,
    SCHEDULER_SERVICE,
    SPIDER_SERVICES,
    STORAGE_SERVICE,
    WORKER_SERVICE,
    Compose,
    ComposeError,
    ComposeService,
    interpolate,
    project_scripts,
    read_dotenv,
    read_yaml,
)

MARIADB_PORT = 3306
"""Where the MariaDB image listens (the compose file does not move it)."""


@pytest.fixture(scope="module")
def compose() -> Compose:
    return Compose.load()


def config_path(compose: Compose, service: ComposeService) -> Path:
    """The file mounted where the service's command reads its configuration."""
    target = service.config_target()
    for entry in service.data["configs"]:
        if PurePosixPath(entry["target"]) == target:
            path: Path = DEPLOY / compose.data["configs"][entry["source"]]["file"]
            assert path.is_file(), f"{service.name}: {path} does not exist"
            return path
    raise AssertionError(f"{service.name}: nothing is mounted at {target}")


def config_of(compose: Compose, service: ComposeService) -> dict[str, Any]:
    data: dict[str, Any] = read_yaml(config_path(compose, service))
    return data


def endpoints(data: Any) -> list[tuple[str, int]]:
    """Every ``{host, port}`` in a configuration, depth first."""
    if isinstance(data, list):
        return [found for item in data for found in endpoints(item)]
    if not isinstance(data, dict):
        return []
    found = [found for value in data.values() for found in endpoints(value)]
    if "host" in data and "port" in data:
        found.append((data["host"], data["port"]))
    return found


def test_compose_runs_a_database_storage_a_scheduler_and_two_execution_managers(
    compose: Compose,
) -> None:
    assert set(compose.service_names()) == {DATABASE_SERVICE, *SPIDER_SERVICES}
    assert compose.service(WORKER_SERVICE).replicas == 2
    for name in (DATABASE_SERVICE, STORAGE_SERVICE, SCHEDULER_SERVICE):
        assert compose.service(name).replicas == 1
    # The default holds without a .env too, as long as the secrets are given.
    secrets = {
        name: value for name, value in read_dotenv(ENV_EXAMPLE).items() if "PASSWORD" in name
    }
    bare = Compose.load({**secrets, "SPIDER_CLUSTER_TOKEN": "t"})
    assert bare.service(WORKER_SERVICE).replicas == 2


def test_compose_refuses_to_start_without_the_secrets() -> None:
    with pytest.raises(ComposeError, match="SPIDER_DATABASE_PASSWORD"):
        Compose.load({})


def test_interpolation_follows_compose() -> None:
    variables = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $$SET", variables) == (
        "x d d  $SET"
    )
    with pytest.raises(ComposeError, match="UNSET is not set: give it"):
        interpolate("${UNSET:?give it}", variables)
    with pytest.raises(ComposeError, match="forms"):
        interpolate("$SET", variables)


def test_each_spider_service_runs_a_script_of_the_package_on_a_mounted_config(
    compose: Compose,
) -> None:
    scripts = project_scripts()
    loaded: dict[str, Any] = {}
    for name in SPIDER_SERVICES:
        service = compose.service(name)
        program = service.command[0]
        assert program in scripts, f"{name}: {program} is not installed by the package"
        data = config_of(compose, service)
        entry = scripts[program]
        if entry == "spider.storage.cli:main":
            loaded[name] = structure_config(data, StorageConfig)
        elif entry == "spider.scheduler.cli:main":
            loaded[name] = structure_config(data, SchedulerConfig)
        else:
            assert entry == "spider.cluster.main:main", entry
            # The EM reads SPIDER_EM_* variables too: compose's must be ones it knows.
            path = config_path(compose, service)
            loaded[name] = load_em_config(path, environ=service.environment)
    assert set(loaded) == set(SPIDER_SERVICES)


def test_healthchecks_ask_readyz_on_the_metrics_port_of_the_config(compose: Compose) -> None:
    for name in SPIDER_SERVICES:
        service = compose.service(name)
        metrics = config_of(compose, service)["metrics"]
        # Reachable from the healthcheck inside the container and from a scraper beside it.
        assert metrics["host"] == LISTEN_ALL, name
        url = f"http://127.0.0.1:{metrics['port']}/readyz"
        assert any(url in argument for argument in service.healthcheck), (name, url)
    database = compose.service(DATABASE_SERVICE)
    assert database.healthcheck[0] == "healthcheck.sh"


def test_each_service_waits_for_what_it_needs_to_be_healthy(compose: Compose) -> None:
    assert compose.service(STORAGE_SERVICE).depends_on == {DATABASE_SERVICE: "service_healthy"}
    assert compose.service(SCHEDULER_SERVICE).depends_on == {STORAGE_SERVICE: "service_healthy"}
    assert compose.service(WORKER_SERVICE).depends_on == {
        STORAGE_SERVICE: "service_healthy",
        SCHEDULER_SERVICE: "service_healthy",
    }
    assert compose.start_order() == [DATABASE_SERVICE, *SPIDER_SERVICES]


def test_every_endpoint_names_a_service_listening_on_that_port(compose: Compose) -> None:
    listening = {
        name: config_of(compose, compose.service(name)).get("port")
        for name in (STORAGE_SERVICE, SCHEDULER_SERVICE)
    }
    listening[DATABASE_SERVICE] = MARIADB_PORT
    for name in SPIDER_SERVICES:
        for host, port in endpoints(config_of(compose, compose.service(name))):
            if host != LISTEN_ALL:
                assert listening.get(host) == port, f"{name}: nothing listens on {host}:{port}"


def test_storage_logs_in_as_the_user_the_database_service_creates(compose: Compose) -> None:
    database = compose.service(DATABASE_SERVICE).environment
    storage = compose.service(STORAGE_SERVICE)
    db = structure_config(config_of(compose, storage), StorageConfig).runtime.db
    assert isinstance(db, MariaDbConfig)
    assert db.credentials is None  # from the environment, where compose puts the secret
    assert db.name == database["MYSQL_DATABASE"]
    assert storage.environment["SPIDER_STORAGE_DB_USERNAME"] == database["MYSQL_USER"]
    assert storage.environment["SPIDER_STORAGE_DB_PASSWORD"] == database["MYSQL_PASSWORD"]


def test_the_cluster_token_is_mounted_where_every_config_reads_it(
    compose: Compose, tmp_path: Path
) -> None:
    for name in SPIDER_SERVICES:
        service = compose.service(name)
        path = config_of(compose, service)["security"]["cluster_token_file"]
        mounted = {str(mount.target) for mount in compose.mounts(service, tmp_path)}
        assert path in mounted, f"{name}: nothing is mounted at {path}"
        assert "environment" in compose.data["secrets"][PurePosixPath(path).name]


def test_clients_reach_storage_on_its_published_port(compose: Compose) -> None:
    storage = compose.service(STORAGE_SERVICE)
    port = config_of(compose, storage)["port"]
    (published,) = storage.data["ports"]
    assert published == f"127.0.0.1:50051:{port}"


def test_the_execution_managers_packages_are_mounted_at_their_package_dir(
    compose: Compose,
) -> None:
    worker = compose.service(WORKER_SERVICE)
    package_dir = config_of(compose, worker)["task_executor"]["package_dir"]
    (volume,) = worker.data["volumes"]
    source, target, mode = volume.split(":")
    assert (target, mode) == (package_dir, "ro")
    assert (DEPLOY / source / "spider_examples" / "__init__.py").is_file()


def test_the_image_exposes_every_port_and_ships_what_it_copies(compose: Compose) -> None:
    dockerfile = DOCKERFILE.read_text()
    (exposed,) = re.findall(r"^EXPOSE (.+)$", dockerfile, re.MULTILINE)
    ports = {
        port
        for name in SPIDER_SERVICES
        for host, port in endpoints(config_of(compose, compose.service(name)))
        if host == LISTEN_ALL
    }
    assert ports == {int(port) for port in exposed.split()}
    assert re.search(r"^USER spider$", dockerfile, re.MULTILINE)
    worker = config_of(compose, compose.service(WORKER_SERVICE))
    assert f"COPY --chown=root:root examples/packages {worker['task_executor']['package_dir']}" in (
        dockerfile
    )
    # BuildKit's ignore file beside the Dockerfile must let in everything the build copies.
    included = {
        line.removeprefix("!").rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {
        source
        for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.MULTILINE)
        for source in [word for word in line.split() if not word.startswith("--")][:-1]
    }
    assert copied <= included, copied - included
