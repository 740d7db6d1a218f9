"""The deployment files in ``deploy/`` as the tests read them, and a compose service made to run
on this machine.

``Compose.load`` reads ``deploy/compose.yaml`` with its variables interpolated as docker compose
does (``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``, ``${NAME:?error}``,
``${NAME?error}``, ``$$``), from the variables of ``deploy/.env.example``, the file a user copies
to ``deploy/.env``.

``Compose.localize`` turns one replica of a service into a process to start here, by the
substitution a host without containers needs, and no other:

- the command's program, a script of pyproject.toml's ``[project.scripts]`` (what the image's
  ``pip install`` puts on its PATH), runs as the function that script names, on this interpreter
  and this checkout; ``python`` is this interpreter;
- a path under one of the service's mount targets (its configs, secrets and volumes) becomes the
  same path under the mount's source here: a bind mount's directory, a fresh directory per named
  volume, a file holding the value of a secret taken from the environment;
- a mounted config file (``deploy/config/*.yaml``) is copied with, in every ``{host, port}`` it
  holds: a compose service's name as host (a peer) replaced by ``127.0.0.1`` and the port that
  service's process listens on here; ``0.0.0.0`` as host (a port of its own) replaced by
  ``127.0.0.1`` and a free port; and its paths mapped as above;
- ``127.0.0.1:PORT`` in an argument (the healthcheck's URL) gets the port the service's own
  ``PORT`` listens on here.

The environment, every other key of the config files and every other argument are the compose
file's, so a test that runs the result runs what compose would.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import attrs
import yaml

from tests.mariadb_server import free_tcp_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
CHART = DEPLOY / "helm" / "spider-py"

DATABASE_SERVICE = "spider-database"
STORAGE_SERVICE = "spider-storage"
SCHEDULER_SERVICE = "spider-scheduler"
WORKER_SERVICE = "spider-worker"
SPIDER_SERVICES = (STORAGE_SERVICE, SCHEDULER_SERVICE, WORKER_SERVICE)
"""The compose services that run Spider-py, in the order compose starts them."""

LISTEN_ALL = "0.0.0.0"
LOOPBACK = "127.0.0.1"

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")
_LOOPBACK_PORT = re.compile(r"127\.0\.0\.1:(\d+)")


class ComposeError(Exception):
    """What docker compose would refuse: a required variable unset, a form it does not know."""


def read_dotenv(path: Path) -> dict[str, str]:
    """``NAME=value`` lines (blank lines and ``#`` comments skipped), as compose reads ``.env``."""
    variables: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if not equals:
            raise ComposeError(f"{path}: {line!r} is not NAME=value")
        variables[name.strip()] = value.strip()
    return variables


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with its ``${...}`` replaced as compose replaces them."""
    if "$" in _VARIABLE.sub("", text):
        raise ComposeError(f"{text!r}: use ${{NAME}} forms (or $$ for a dollar sign)")

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name is None:
            return "$"
        value = variables.get(name)
        operator, argument = match["op"], match["arg"]
        if operator is None:
            return value or ""
        unset = value is None or (operator.startswith(":") and value == "")
        if not unset:
            assert value is not None
            return value
        if operator.endswith("-"):
            return str(argument)
        raise ComposeError(f"required variable {name} is not set: {argument}")

    return _VARIABLE.sub(replace, text)


def _interpolated(data: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(data, str):
        return interpolate(data, variables)
    if isinstance(data, dict):
        return {key: _interpolated(value, variables) for key, value in data.items()}
    if isinstance(data, list):
        return [_interpolated(value, variables) for value in data]
    return data


def project_scripts() -> dict[str, str]:
    """pyproject.toml's ``[project.scripts]``: command name -> ``module:function``."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts: dict[str, str] = pyproject["project"]["scripts"]
    return scripts


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@attrs.frozen
class Mount:
    """Where a container sees something (``target``) and where it is on this machine."""

    target: PurePosixPath
    source: Path
    config: bool = False
    """A ``configs:`` entry: a Spider-py configuration file, copied with its endpoints
    localized rather than used as it is."""

    def map(self, path: str) -> str | None:
        """``path`` under this mount, as a path here; ``None`` if it is not under it."""
        if path == str(self.target):
            return str(self.source)
        prefix = f"{self.target}/"
        if path.startswith(prefix):
            return str(self.source / path.removeprefix(prefix))
        return None


@attrs.define(eq=False)
class HostPorts:
    """The port on this machine of each container's port: ``(instance, port) -> port``; an
    instance is a service's name, or ``NAME-N`` for replica N of a service."""

    assigned: dict[tuple[str, int], int] = attrs.field(factory=dict)

    def of(self, instance: str, port: int) -> int:
        key = (instance, port)
        if key not in self.assigned:
            self.assigned[key] = free_tcp_port()
        return self.assigned[key]


@attrs.frozen
class LocalService:
    """One replica of a compose service, as it runs on this machine."""

    instance: str
    command: list[str]
    environment: dict[str, str]
    healthcheck: list[str]
    configs: dict[str, Any]
    """Each mounted config file's localized content, by its path in the container."""

    def config(self) -> dict[str, Any]:
        """The configuration its command names after ``--config``."""
        (content,) = self.configs.values()
        data: dict[str, Any] = content
        return data


@attrs.frozen
class ComposeService:
    """One service of the compose file, interpolated."""

    name: str
    data: Mapping[str, Any]

    @property
    def command(self) -> list[str]:
        command: list[str] = self.data["command"]
        return command

    @property
    def environment(self) -> dict[str, str]:
        raw = self.data.get("environment") or {}
        if isinstance(raw, list):
            raw = dict(item.partition("=")[::2] for item in raw)
        return {str(name): str(value) for name, value in raw.items()}

    @property
    def replicas(self) -> int:
        return int(self.data.get("deploy", {}).get("replicas", 1))

    @property
    def healthcheck(self) -> list[str]:
        """The healthcheck's command (``CMD`` form)."""
        test: list[str] = self.data["healthcheck"]["test"]
        assert test[0] == "CMD", f"{self.name}: the healthcheck runs no shell: use CMD"
        return test[1:]

    @property
    def depends_on(self) -> dict[str, str]:
        """The services this one waits for, and the condition of each."""
        raw = self.data.get("depends_on") or {}
        if isinstance(raw, list):
            return dict.fromkeys(raw, "service_started")
        return {name: spec.get("condition", "service_started") for name, spec in raw.items()}

    def config_target(self) -> PurePosixPath:
        """The path its command gives after ``--config``."""
        command = self.command
        return PurePosixPath(command[command.index("--config") + 1])

    def instances(self) -> list[str]:
        if self.replicas == 1:
            return [self.name]
        return [f"{self.name}-{number}" for number in range(1, self.replicas + 1)]


@attrs.frozen
class Compose:
    """``deploy/compose.yaml`` with ``variables`` interpolated."""

    data: Mapping[str, Any]
    variables: Mapping[str, str]

    @classmethod
    def load(cls, variables: Mapping[str, str] | None = None) -> Compose:
        """The compose file with ``variables`` (default: those of ``.env.example``)."""
        if variables is None:
            variables = read_dotenv(ENV_EXAMPLE)
        data = _interpolated(read_yaml(COMPOSE_FILE), variables)
        return cls(data, variables)

    def service(self, name: str) -> ComposeService:
        return ComposeService(name, self.data["services"][name])

    def service_names(self) -> list[str]:
        return list(self.data["services"])

    def start_order(self) -> list[str]:
        """The services, each after those it depends on (compose's order)."""
        order: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
            if name in order:
                return
            for dependency in self.service(name).depends_on:
                visit(dependency, (*path, name))
            order.append(name)

        for name in self.service_names():
            visit(name, ())
        return order

    def mounts(self, service: ComposeService, here: Path) -> list[Mount]:
        """What ``service`` mounts, and where each is on this machine (named volumes and
        secrets from the environment are made under ``here``)."""
        mounts: list[Mount] = []
        for entry in service.data.get("configs") or []:
            source, target = _long_form(entry, default_target="/{}")
            path = DEPLOY / self.data["configs"][source]["file"]
            mounts.append(Mount(target, path.resolve(), config=True))
        for entry in service.data.get("secrets") or []:
            source, target = _long_form(entry, default_target="/run/secrets/{}")
            secret = self.data["secrets"][source]
            if "file" in secret:
                path = (DEPLOY / secret["file"]).resolve()
            else:
                path = here / "secrets" / source
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(self.variables[secret["environment"]])
            mounts.append(Mount(target, path))
        for entry in service.data.get("volumes") or []:
            source, target_text, *_mode = entry.split(":")
            if source.startswith((".", "/")):
                path = (DEPLOY / source).resolve()
            else:
                assert source in self.data["volumes"], f"{service.name}: volume {source}"
                path = here / "volumes" / source
                path.mkdir(parents=True, exist_ok=True)
            mounts.append(Mount(PurePosixPath(target_text), path))
        return mounts

    def localize(
        self,
        service: ComposeService,
        instance: str,
        here: Path,
        ports: HostPorts,
        edit: Callable[[dict[str, Any]], dict[str, Any]] = lambda config: config,
    ) -> LocalService:
        """Replica ``instance`` of ``service`` as it runs here (the module's docstring lists
        what changes); its config files, after ``edit``, are written under ``here``."""
        mounts = sorted(self.mounts(service, here), key=lambda mount: -len(str(mount.target)))

        def local_path(text: str) -> str:
            for mount in mounts:
                mapped = mount.map(text)
                if mapped is not None:
                    return mapped
            return text

        peers = set(self.service_names())
        configs: dict[str, Any] = {}
        written: dict[str, str] = {}
        for mount in mounts:
            if not mount.config:
                continue
            content = edit(read_yaml(mount.source))
            local = _localized(content, instance, peers, ports, local_path)
            configs[str(mount.target)] = local
            copy = here / "config" / instance / mount.source.name
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(yaml.safe_dump(local, sort_keys=False))
            written[str(mount.target)] = str(copy)

        def local_argument(argument: str) -> str:
            if argument in written:
                return written[argument]
            return _LOOPBACK_PORT.sub(
                lambda match: f"{LOOPBACK}:{ports.of(instance, int(match[1]))}",
                local_path(argument),
            )

        return LocalService(
            instance=instance,
            command=_local_program(service.command[0])
            + [local_argument(argument) for argument in service.command[1:]],
            environment=service.environment,
            healthcheck=_local_program(service.healthcheck[0])
            + [local_argument(argument) for argument in service.healthcheck[1:]],
            configs=configs,
        )


def _long_form(entry: str | Mapping[str, str], *, default_target: str) -> tuple[str, PurePosixPath]:
    if isinstance(entry, str):
        return entry, PurePosixPath(default_target.format(entry))
    source = entry["source"]
    return source, PurePosixPath(entry.get("target") or default_target.format(source))


def _local_program(program: str) -> list[str]:
    if program == "python":
        return [sys.executable]
    scripts = project_scripts()
    assert program in scripts, f"{program} is not a script of pyproject.toml: {sorted(scripts)}"
    module, function = scripts[program].split(":")
    return [
        sys.executable,
        "-c",
        f"import sys; from {module} import {function}; sys.exit({function}())",
    ]


def _localized(
    data: Any,
    instance: str,
    peers: set[str],
    ports: HostPorts,
    local_path: Callable[[str], str],
) -> Any:
    if isinstance(data, str):
        return local_path(data)
    if isinstance(data, list):
        return [_localized(item, instance, peers, ports, local_path) for item in data]
    if not isinstance(data, dict):
        return data
    result = {
        key: _localized(value, instance, peers, ports, local_path) for key, value in data.items()
    }
    if "host" in data and "port" in data:
        host, port = data["host"], data["port"]
        if host in peers:
            owner = host  # a peer, reached by its service name
        elif host == LISTEN_ALL:
            owner = instance  # a port of its own
        else:
            raise AssertionError(
                f"{instance}: host {host!r} is neither a compose service nor {LISTEN_ALL}"
            )
        result["host"] = LOOPBACK
        result["port"] = ports.of(owner, int(port))
    return result
