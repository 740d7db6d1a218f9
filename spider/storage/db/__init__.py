"""Persistence for the storage service: one interface, SQLite and MariaDB/MySQL backends."""
