"""Opening the configured database."""

from __future__ import annotations

import os
from collections.abc import Mapping

from spider.storage.db.config import DatabaseConfig, SqliteConfig
from spider.storage.db.interface import StorageDatabase
from spider.storage.db.mariadb import MariaDbDatabase
from spider.storage.db.sqlite import SqliteDatabase


def open_database(
    config: DatabaseConfig, environ: Mapping[str, str] = os.environ
) -> StorageDatabase:
    """The backend ``config`` names; connects lazily (call ``create_schema`` first).

    Raises ``ConfigError`` when MariaDB credentials are neither configured nor in ``environ``.
    """
    if isinstance(config, SqliteConfig):
        return SqliteDatabase(config.sqlite)
    credentials = config.resolve_credentials(environ)
    return MariaDbDatabase(
        host=config.host,
        port=config.port,
        name=config.name,
        username=credentials.username,
        password=credentials.password,
        max_connections=config.max_connections,
    )
