"""Loading YAML configuration files into attrs classes, with errors that name the key.

Every service describes its configuration as frozen attrs classes with defaults; this module
turns a YAML file (plus overrides) into one, rejecting unknown keys by name and reporting every
bad value at once, e.g. ``task_executor.max_log_line_bytes: must be >= 1, got 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import cattrs
import yaml
from cattrs.gen import make_dict_structure_fn
from cattrs.preconf.pyyaml import make_converter

from spider.core.errors import SpiderError

T = TypeVar("T")

_CONVERTER = make_converter(forbid_extra_keys=True)


def register_union(union: Any, choose: Callable[[Mapping[str, Any]], type]) -> None:
    """Build values of the config-class ``union`` as the class ``choose(data)`` names.

    cattrs would otherwise guess the member by a key of its own choosing, so a half-written
    block could be reported against either class. ``T | None`` is registered too.
    """

    def structure(data: Any, _type: Any) -> Any:
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a mapping, got {type(data).__name__}")
        return _CONVERTER.structure(data, choose(data))

    def structure_optional(data: Any, type_: Any) -> Any:
        return None if data is None else structure(data, type_)

    _CONVERTER.register_structure_hook(union, structure)
    _CONVERTER.register_structure_hook(union | None, structure_optional)


def structure_with_converters(config_type: type) -> None:
    """Build ``config_type`` handing each field that has an attrs converter its value as the
    file gives it, so that the converter decides what it accepts (one path or a list of them,
    say) instead of cattrs first coercing the value to the field's type."""
    _CONVERTER.register_structure_hook(
        config_type,
        make_dict_structure_fn(config_type, _CONVERTER, _cattrs_prefer_attrib_converters=True),
    )


class ConfigError(SpiderError):
    """A configuration file or override that cannot be used; the message lists every problem."""


def _describe(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        keys = ", ".join(repr(key) for key in sorted(exc.extra_fields))
        return f"unknown key(s) {keys}"
    if isinstance(exc, KeyError):
        return "required key is missing"
    if isinstance(exc, ValueError | TypeError) and str(exc):
        if type_ is None:  # an attrs validator: its message names the field and the bound
            return str(exc)
        return f"invalid value for {getattr(type_, '__name__', type_)}: {exc}"
    return cattrs.v.format_exception(exc, type_)


def _location(path: str) -> str:
    # cattrs writes "$.a.b" or "$.a[0]"; show "a.b" and "(top level)".
    trimmed = path.removeprefix("$").removeprefix(".")
    return trimmed or "(top level)"


def structure_config(data: Any, config_type: type[T], *, source: str = "configuration") -> T:
    """Build ``config_type`` from plain data, or raise ``ConfigError`` naming every bad key."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping of keys to values, got {type(data).__name__}"
        )
    try:
        return _CONVERTER.structure(data, config_type)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            problems = cattrs.transform_error(exc, format_exception=_describe)
        else:
            problems = [str(exc)]
        lines = []
        for problem in problems:
            message, _, path = problem.rpartition(" @ ")
            lines.append(f"  {_location(path)}: {message}" if message else f"  {problem}")
        raise ConfigError(f"{source} is invalid:\n" + "\n".join(lines)) from exc


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping a YAML configuration file holds (an empty file is an empty mapping).

    ``ConfigError`` when the file cannot be read, is not YAML, or holds something else.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"configuration file {path}: expected a mapping of keys to values, "
            f"got {type(data).__name__}"
        )
    return data


def load_config_file(path: Path, config_type: type[T]) -> T:
    """Read a YAML file into ``config_type``."""
    return structure_config(
        read_config_file(path), config_type, source=f"configuration file {path}"
    )


def unstructure_config(config: Any) -> Any:
    """The plain-data form of a configuration object (for ``--print-config`` and tests)."""
    return _CONVERTER.unstructure(config)


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Overlay dotted-key overrides (``{"storage.port": 1}``) on nested config data."""
    merged: dict[str, Any] = _deep_copy(base)
    for dotted, value in overrides.items():
        node = merged
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[leaf] = value
    return merged


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: _deep_copy(value) if isinstance(value, Mapping) else value
        for key, value in data.items()
    }
