"""The storage service: jobs, task instances, sessions and EM liveness, on SQLite or MariaDB."""
