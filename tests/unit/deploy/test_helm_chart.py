"""The Helm chart in ``deploy/helm/spider-py``, checked without a helm binary: its files parse,
its templates use only values and named templates that exist and close every block, its config
blocks hold keys the services accept, and its pods run what compose runs, probed on
``/readyz`` and ``/healthz`` at the metrics port their configuration serves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from spider.core.config import structure_config
from spider.em.config import ExecutionManagerConfig
from spider.scheduler.config import SchedulerConfig
from spider.storage.config import StorageConfig
from tests.deploy_files import (
    CHART,
    DEPLOY,
    SCHEDULER_SERVICE,
    STORAGE_SERVICE,
    WORKER_SERVICE,
    Compose,
    read_yaml,
)

TEMPLATES = CHART / "templates"
ACTION = re.compile(r"\{\{-?(.*?)-?\}\}", re.DOTALL)
VALUE_REFERENCE = re.compile(r"\.Values((?:\.\w+)+)")
NAMED = re.compile(r'\b(define|include|template)\s+"([^"]+)"')
OPENERS = ("if", "with", "range", "define", "block")

COMPONENTS = {
    # values key, template, the compose service running the same thing, its config class
    "storage": ("storage.yaml", STORAGE_SERVICE, StorageConfig),
    "scheduler": ("scheduler.yaml", SCHEDULER_SERVICE, SchedulerConfig),
    "worker": ("worker.yaml", WORKER_SERVICE, ExecutionManagerConfig),
}
CONFIG_DEFINES = {
    "storage": "spider-py.storageConfig",
    "scheduler": "spider-py.schedulerConfig",
    "worker": "spider-py.executionManagerConfig",
}


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    data: dict[str, Any] = read_yaml(CHART / "values.yaml")
    return data


def template_files() -> list[Path]:
    return sorted(path for path in TEMPLATES.iterdir() if path.suffix in (".yaml", ".tpl"))


def actions(path: Path) -> list[str]:
    """The text of each ``{{ ... }}`` action (comments dropped)."""
    return [
        text.strip()
        for text in ACTION.findall(path.read_text())
        if not text.strip().startswith("/*")
    ]


def defined_block(name: str) -> str:
    """The body of ``{{ define name }}`` in the helpers."""
    helpers = (TEMPLATES / "_helpers.tpl").read_text()
    start = helpers.index(f'define "{name}"')
    return helpers[start : helpers.index('{{- define "', start + 1)]


def test_the_chart_file_parses() -> None:
    chart = read_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == CHART.name
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert chart["appVersion"] == "0.1.0"


def test_every_value_a_template_uses_is_in_values_yaml(values: dict[str, Any]) -> None:
    missing = []
    used = 0
    for path in [*template_files(), TEMPLATES / "NOTES.txt"]:
        for reference in VALUE_REFERENCE.findall(path.read_text()):
            used += 1
            node: Any = values
            for key in reference.strip(".").split("."):
                if not isinstance(node, dict) or key not in node:
                    missing.append(f"{path.name}: .Values{reference}")
                    break
                node = node[key]
    assert missing == []
    assert used > 30  # the scan found the references


def test_every_named_template_used_is_defined() -> None:
    defined: set[str] = set()
    used: set[str] = set()
    for path in template_files():
        for kind, name in NAMED.findall(path.read_text()):
            (defined if kind == "define" else used).add(name)
    assert used - defined == set()
    assert "spider-py.fullname" in used


@pytest.mark.parametrize("path", template_files(), ids=lambda path: path.name)
def test_every_block_of_a_template_is_closed(path: Path) -> None:
    depth = 0
    for action in actions(path):
        word = action.split()[0] if action.split() else ""
        if word in OPENERS:
            depth += 1
        elif word == "end":
            depth -= 1
            assert depth >= 0, f"{path.name}: an end closes nothing"
    assert depth == 0, f"{path.name}: {depth} block(s) left open"
    assert path.read_text().count("{{") == path.read_text().count("}}")


def test_each_config_block_holds_keys_the_service_accepts(values: dict[str, Any]) -> None:
    for component, (_, _, config_class) in COMPONENTS.items():
        structure_config(values[component]["config"], config_class, source=component)


def test_the_pods_run_the_commands_compose_runs_on_the_same_paths() -> None:
    compose = Compose.load()
    for template, service, _ in COMPONENTS.values():
        text = (TEMPLATES / template).read_text()
        (args,) = re.findall(r"^\s+args: (\[.+\])$", text, re.MULTILINE)
        assert yaml.safe_load(args) == compose.service(service).command
    # The cluster credential is where compose mounts it, where deploy/config/*.yaml read it.
    token_file = read_yaml(DEPLOY / "config" / "storage.yaml")["security"]["cluster_token_file"]
    assert token_file in defined_block("spider-py.clusterTokenFile")


def test_probes_ask_readyz_and_healthz_on_the_port_the_config_serves_metrics_on(
    values: dict[str, Any],
) -> None:
    probes = defined_block("spider-py.probes")
    assert re.search(r"readinessProbe:\n  httpGet:\n    path: /readyz\n    port: metrics", probes)
    assert re.search(r"livenessProbe:\n  httpGet:\n    path: /healthz\n    port: metrics", probes)
    for component, (template, _, _) in COMPONENTS.items():
        text = (TEMPLATES / template).read_text()
        assert 'include "spider-py.probes"' in text
        port = f".Values.{component}.metricsPort"
        assert re.search(
            rf"- name: metrics\n\s+containerPort: \{{\{{ {re.escape(port)} \}}\}}", text
        )
        # ...and the configuration the pod gets serves its metrics there, on every interface.
        config = defined_block(CONFIG_DEFINES[component])
        assert f'$metrics := dict "host" "0.0.0.0" "port" (int {port})' in config
        assert isinstance(values[component]["metricsPort"], int)


def test_execution_managers_run_as_many_replicas_as_the_values_say(values: dict[str, Any]) -> None:
    assert "replicas: {{ .Values.worker.replicas }}" in (TEMPLATES / "worker.yaml").read_text()
    assert values["worker"]["replicas"] == 2
    for template in ("storage.yaml", "scheduler.yaml"):
        # One storage per database, one scheduler: never two at once, even during an upgrade.
        text = (TEMPLATES / template).read_text()
        assert "replicas: 1\n" in text
        assert "type: Recreate" in text


def test_secrets_come_from_the_chart_secret(values: dict[str, Any]) -> None:
    secret = (TEMPLATES / "secret.yaml").read_text()
    for key in ("cluster-token", "database-username", "database-password"):
        assert f"  {key}: " in secret
    storage = (TEMPLATES / "storage.yaml").read_text()
    for variable, key in (
        ("SPIDER_STORAGE_DB_USERNAME", "database-username"),
        ("SPIDER_STORAGE_DB_PASSWORD", "database-password"),
    ):
        assert re.search(
            rf"- name: {variable}\n\s+valueFrom:\n\s+secretKeyRef:\n\s+name: .+\n\s+key: {key}",
            storage,
        )
    # Nothing secret has a default: an install without them fails on `required`.
    assert values["clusterToken"] == values["database"]["password"] == ""
    assert values["database"]["rootPassword"] == ""
