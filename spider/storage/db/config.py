"""The storage service's ``runtime.db`` configuration: a SQLite file or a MariaDB/MySQL server.

YAML forms (loaded with ``spider.core.config.structure_config``; the key set picks the class)::

    db: {sqlite: /var/lib/spider/storage.db}

    db:                       # Spider's form
      host: spider-database
      port: 3306              # optional
      name: spider-db
      max_connections: 64     # optional
      credentials: {username: spider, password: ...}   # optional, else the environment
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from spider.core.config import ConfigError, register_union

USERNAME_ENV = "SPIDER_STORAGE_DB_USERNAME"
PASSWORD_ENV = "SPIDER_STORAGE_DB_PASSWORD"


@attrs.frozen
class DatabaseCredentials:
    """A MariaDB/MySQL user and password."""

    username: str
    password: str = attrs.field(repr=False)


@attrs.frozen
class SqliteConfig:
    """A SQLite database file (its directory must exist)."""

    sqlite: Path


@attrs.frozen
class MariaDbConfig:
    """A MariaDB (or MySQL) database; the database ``name`` must already exist on the server."""

    host: str
    name: str
    port: int = attrs.field(
        default=3306, validator=[attrs.validators.ge(1), attrs.validators.le(65535)]
    )
    max_connections: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    credentials: DatabaseCredentials | None = None

    def resolve_credentials(self, environ: Mapping[str, str] = os.environ) -> DatabaseCredentials:
        """The configured credentials, else those in the environment (both variables required)."""
        if self.credentials is not None:
            return self.credentials
        missing = [name for name in (USERNAME_ENV, PASSWORD_ENV) if name not in environ]
        if missing:
            raise ConfigError(
                f"runtime.db has no credentials and the environment lacks {' and '.join(missing)}:"
                f" set {USERNAME_ENV} and {PASSWORD_ENV}, or add runtime.db.credentials"
            )
        return DatabaseCredentials(environ[USERNAME_ENV], environ[PASSWORD_ENV])


DatabaseConfig = SqliteConfig | MariaDbConfig
"""Where the storage service keeps its state."""

register_union(DatabaseConfig, lambda data: SqliteConfig if "sqlite" in data else MariaDbConfig)
