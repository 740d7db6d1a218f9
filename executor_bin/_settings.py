"""The executor's configuration, read from its environment once at start."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from spider.executor.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    ENV_LOG_LEVEL,
    ENV_MAX_FRAME_BYTES,
    ENV_PACKAGE_DIR,
    decode_package_dir,
    validate_max_frame_bytes,
    validate_package_dir,
)

DEFAULT_LOG_LEVEL = logging.INFO
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(Exception):
    """An environment the executor cannot run with; the message says which variable and why."""


@attrs.frozen
class Settings:
    """Where packages live, the frame limit and the log level."""

    package_dir: tuple[Path, ...] = attrs.field(converter=validate_package_dir)
    """The package directories, searched in order."""
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    log_level: int = DEFAULT_LOG_LEVEL

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Settings:
        """Read and validate ``SPIDER_TDL_PACKAGE_DIR`` and the optional variables."""
        return cls(
            package_dir=_package_dir(env),
            max_frame_bytes=_max_frame_bytes(env),
            log_level=log_level_from_environment(env),
        )


def log_level_from_environment(env: Mapping[str, str]) -> int:
    """The level named by ``SPIDER_LOG_LEVEL`` (default INFO)."""
    name = env.get(ENV_LOG_LEVEL, "").strip().upper()
    if not name:
        return DEFAULT_LOG_LEVEL
    if name not in _LOG_LEVELS:
        raise SettingsError(
            f"{ENV_LOG_LEVEL}={env[ENV_LOG_LEVEL]!r} is not a log level: use one of "
            f"{', '.join(_LOG_LEVELS)}"
        )
    return logging.getLevelNamesMapping()[name]


def _package_dir(env: Mapping[str, str]) -> tuple[Path, ...]:
    raw = env.get(ENV_PACKAGE_DIR)
    if not raw:
        raise SettingsError(
            f"{ENV_PACKAGE_DIR} is not set: set it to the directory holding the TDL packages, "
            f"or to several separated by {os.pathsep!r}"
        )
    try:
        directories = decode_package_dir(raw)
    except ValueError as exc:
        raise SettingsError(f"{ENV_PACKAGE_DIR}={raw!r} is invalid: {exc}") from None
    for directory in directories:
        # Each directory is checked as a single one always was; with several, say which.
        shown = f"{ENV_PACKAGE_DIR}={raw!r}"
        if len(directories) > 1:
            shown += f": directory {str(directory)!r}"
        if not directory.exists():
            raise SettingsError(
                f"{shown} does not exist: point it at the directory holding the TDL packages"
            )
        if not directory.is_dir():
            raise SettingsError(
                f"{shown} is not a directory: point it at the directory holding the TDL packages"
            )
    return directories


def _max_frame_bytes(env: Mapping[str, str]) -> int:
    raw = env.get(ENV_MAX_FRAME_BYTES)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_FRAME_BYTES
    try:
        return validate_max_frame_bytes(int(raw))
    except ValueError as exc:
        raise SettingsError(f"{ENV_MAX_FRAME_BYTES}={raw!r} is invalid: {exc}") from None
