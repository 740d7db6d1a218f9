"""Persistence for the storage service: one interface, SQLite and MariaDB/MySQL backends."""

from spider.storage.db._open import open_database
from spider.storage.db.config import (
    DatabaseConfig,
    DatabaseCredentials,
    MariaDbConfig,
    SqliteConfig,
)
from spider.storage.db.interface import (
    LEGAL_TRANSITIONS,
    RECOVERABLE_STATES,
    DatabaseError,
    DatabaseUnavailable,
    DuplicateResourceGroup,
    ExecutionManagerDead,
    IllegalJobTransition,
    JobQuery,
    JobRecord,
    JobStatus,
    JobSummary,
    PayloadTooLarge,
    StorageDatabase,
    StoredJobTasks,
    UnknownExecutionManager,
    UnknownJob,
    UnknownResourceGroup,
)
from spider.storage.db.mariadb import MariaDbDatabase
from spider.storage.db.sqlite import SqliteDatabase

__all__ = [
    "LEGAL_TRANSITIONS",
    "RECOVERABLE_STATES",
    "DatabaseConfig",
    "DatabaseCredentials",
    "DatabaseError",
    "DatabaseUnavailable",
    "DuplicateResourceGroup",
    "ExecutionManagerDead",
    "IllegalJobTransition",
    "JobQuery",
    "JobRecord",
    "JobStatus",
    "JobSummary",
    "MariaDbConfig",
    "MariaDbDatabase",
    "PayloadTooLarge",
    "SqliteConfig",
    "SqliteDatabase",
    "StorageDatabase",
    "StoredJobTasks",
    "UnknownExecutionManager",
    "UnknownJob",
    "UnknownResourceGroup",
    "open_database",
]
