"""Finding and killing a process's descendants through /proc, on real processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from spider.executor.process_tree import kill_descendants, live_descendants, tree_walk_supported

pytestmark = pytest.mark.skipif(not tree_walk_supported(), reason="needs /proc (Linux)")


@pytest.fixture
def shell_with_children(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    """A shell with two children (one with ") (" in its command name), their pids; the shell
    waits for them, then for a line on its stdin."""
    odd_name = tmp_path / "a) (b"
    odd_name.symlink_to("/bin/sleep")
    script = f'"{odd_name}" 1000 & one=$!; sleep 1000 & echo "$one $!"; wait; read line'
    shell = subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert shell.stdin is not None
    assert shell.stdout is not None
    try:
        yield shell, [int(pid) for pid in shell.stdout.readline().split()]
    finally:
        for pid in live_descendants(shell.pid):
            os.kill(pid, 9)
        shell.kill()
        shell.wait()
        shell.stdin.close()
        shell.stdout.close()


def test_finds_the_live_descendants_and_not_the_root(
    shell_with_children: tuple[subprocess.Popen[bytes], list[int]],
) -> None:
    shell, children = shell_with_children
    assert len(children) == 2
    assert set(live_descendants(shell.pid)) == set(children)
    assert shell.pid in live_descendants(os.getpid())


def test_kills_every_descendant_and_leaves_the_root(
    shell_with_children: tuple[subprocess.Popen[bytes], list[int]],
) -> None:
    shell, _ = shell_with_children
    assert kill_descendants(shell.pid) == 2
    assert live_descendants(shell.pid) == []
    assert shell.poll() is None


def test_a_process_without_descendants_has_none() -> None:
    assert live_descendants(2**22 + 1) == []
    assert kill_descendants(2**22 + 1) == 0
