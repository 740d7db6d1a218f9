"""The EM's start-up check of ``task_executor.package_dir``: every directory usable, and no
package in two of them.

Executors take a package from the first directory holding it, so a second copy never runs.
The EM refuses to start rather than warn: such a copy is a mistake (two teams chose one name,
an old version was left behind) or a shadowing invisible to the next reader of the
configuration, and either way which code a job runs would hang on the order of a list. A
warning is one log line, read once the results are wrong; a refusal is seen at once, by
whoever changed the directories. The check sees the directories as they are at start; a
package installed later is found by the same first-wins search, unchecked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from spider.core.config import ConfigError
from spider.tdl import PackageNotFound, package_names

SETTING: Final = "task_executor.package_dir"


def check_package_dir(package_dir: Sequence[Path]) -> None:
    """``ConfigError`` naming the setting and every directory in trouble: one that cannot be
    listed (missing, not a directory, unreadable), one listed twice, or a package name found
    in more than one directory."""
    problems: list[str] = []
    seen: dict[Path, Path] = {}
    homes: dict[str, list[Path]] = {}
    for directory in package_dir:
        try:
            names = package_names(directory)
        except PackageNotFound as exc:
            problems.append(str(exc))
            continue
        resolved = directory.resolve()
        if resolved in seen:
            first = seen[resolved]
            if first == directory:
                problems.append(f"{str(directory)!r} is listed twice: list it once")
            else:
                problems.append(
                    f"{str(first)!r} and {str(directory)!r} are the same directory "
                    f"({str(resolved)!r}): list it once"
                )
            continue
        seen[resolved] = directory
        for name in names:
            homes.setdefault(name, []).append(directory)
    for name, directories in homes.items():
        if len(directories) > 1:
            copies = ", ".join(repr(str(directory / name)) for directory in directories)
            problems.append(
                f"package {name!r} is in more than one package directory ({copies}): only the "
                "first would ever run; remove the other copies, or rename the packages"
            )
    if problems:
        raise ConfigError(f"{SETTING} is invalid:\n" + "\n".join(f"  {line}" for line in problems))
