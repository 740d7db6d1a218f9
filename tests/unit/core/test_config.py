from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from spider.core.config import (
    ConfigError,
    load_config_file,
    merge_overrides,
    register_union,
    structure_config,
    unstructure_config,
)


@attrs.frozen
class Endpoint:
    host: str
    port: int = attrs.field(validator=[attrs.validators.ge(1), attrs.validators.le(65535)])


@attrs.frozen
class Example:
    storage: Endpoint | None = None
    interval_sec: float = 1.0
    names: tuple[str, ...] = ()


def test_a_valid_file_becomes_the_attrs_object(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("storage: {host: db, port: 50051}\ninterval_sec: 0.25\nnames: [a, b]\n")
    assert load_config_file(path, Example) == Example(Endpoint("db", 50051), 0.25, ("a", "b"))


def test_an_empty_file_takes_every_default(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("")
    assert load_config_file(path, Example) == Example()


def test_every_problem_is_reported_with_its_key() -> None:
    with pytest.raises(ConfigError) as info:
        structure_config(
            {"storage": {"host": "a", "port": 70000, "tls": True}, "interval_sec": "x", "typo": 1},
            Example,
        )
    message = str(info.value)
    assert "storage: unknown key(s) 'tls'" in message
    assert "(top level): unknown key(s) 'typo'" in message
    assert "interval_sec: invalid value for float" in message


def test_validator_messages_name_the_field_and_bound() -> None:
    with pytest.raises(ConfigError, match=r"storage: 'port' must be <= 65535: 70000"):
        structure_config({"storage": {"host": "a", "port": 70000}}, Example)


def test_missing_required_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"storage.host: required key is missing"):
        structure_config({"storage": {"port": 1}}, Example)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config_file(tmp_path / "missing.yaml", Example)
    bad = tmp_path / "bad.yaml"
    bad.write_text("storage: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(bad, Example)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config_file(listing, Example)


def test_dotted_overrides_overlay_nested_data() -> None:
    base = {"storage": {"host": "a", "port": 1}, "names": ["x"]}
    merged = merge_overrides(base, {"storage.port": 2, "scheduler.host": "s"})
    assert merged == {
        "storage": {"host": "a", "port": 2},
        "names": ["x"],
        "scheduler": {"host": "s"},
    }
    assert base["storage"] == {"host": "a", "port": 1}


def test_unstructure_round_trips() -> None:
    config = Example(Endpoint("h", 2), 3.5, ("n",))
    assert structure_config(unstructure_config(config), Example) == config


@attrs.frozen
class FileStore:
    path: str


@attrs.frozen
class ServerStore:
    host: str
    port: int = 1


Store = FileStore | ServerStore
register_union(Store, lambda data: FileStore if "path" in data else ServerStore)


@attrs.frozen
class WithStore:
    store: Store | None = None


def test_a_registered_union_is_chosen_by_key_and_reported_against_that_class() -> None:
    assert structure_config({"store": {"path": "/x"}}, WithStore).store == FileStore("/x")
    assert structure_config({"store": {"host": "h"}}, WithStore).store == ServerStore("h")
    assert structure_config({}, WithStore).store is None
    # Always the server class's own error, never a guess at the other member.
    for _ in range(5):
        with pytest.raises(ConfigError, match=r"store.host: required key is missing"):
            structure_config({"store": {"port": 2}}, WithStore)
    with pytest.raises(ConfigError, match=r"store: unknown key\(s\) 'port'"):
        structure_config({"store": {"path": "/x", "port": 2}}, WithStore)
