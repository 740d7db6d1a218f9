"""One service of the cluster as a subprocess whose stderr (JSON log lines) is collected."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

START_DEADLINE = 60.0
EXIT_DEADLINE = 30.0


@attrs.define(eq=False)
class ServiceProcess:
    """``python -m <module> args``; ``ready`` is set once a log line contains ``ready_text``."""

    name: str
    process: subprocess.Popen[str]
    ready_text: str
    lines: list[str] = attrs.field(factory=list)
    ready: threading.Event = attrs.field(factory=threading.Event)
    reader: threading.Thread | None = None

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if self.ready_text in line:
                self.ready.set()
        self.process.stderr.close()
        self.ready.set()  # the process ended: stop waiting for it

    def wait_ready(self) -> None:
        """Block until the process logged its ready line; fail with its log if it exited."""
        if not self.ready.wait(START_DEADLINE) or self.process.poll() is not None:
            raise AssertionError(f"{self.name} did not start:\n{self.log()}")

    def entries(self) -> list[dict[str, Any]]:
        """Its JSON log lines so far, parsed (other lines are skipped)."""
        parsed = []
        for line in list(self.lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                parsed.append(entry)
        return parsed

    def wait_for_entry(
        self, matches: Callable[[dict[str, Any]], bool], deadline: float = START_DEADLINE
    ) -> dict[str, Any]:
        """The first log entry that ``matches``, polling until ``deadline`` seconds pass."""
        give_up = time.monotonic() + deadline
        while True:
            for entry in self.entries():
                if matches(entry):
                    return entry
            assert time.monotonic() < give_up, f"{self.name} never logged it:\n{self.log()}"
            time.sleep(0.05)  # polling the log a reader thread fills

    def child_pids(self) -> set[int]:
        """The pids of its child processes (an EM's executors and warm spares)."""
        children: set[int] = set()
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            children.update(int(pid) for pid in (task / "children").read_text().split())
        return children

    def pause(self) -> None:
        """SIGSTOP the process alone (its children run on), as a hung node or a debugger."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def log(self) -> str:
        """Everything it logged so far (for assertion messages)."""
        return "".join(self.lines[-200:])

    def _reap(self) -> int:
        status = self.process.wait(EXIT_DEADLINE)
        if self.reader is not None:
            self.reader.join(EXIT_DEADLINE)
        return status

    def kill(self) -> None:
        """SIGKILL to the whole process group (an EM's executors too), as in a node crash."""
        self._kill_group()
        self._reap()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self) -> int:
        """SIGTERM, then the exit status; SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self._reap()
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self._kill_group()  # executors left behind by a broken shutdown


def spawn(
    name: str,
    module: str,
    *args: str,
    ready_text: str,
    env: Mapping[str, str] | None = None,
    launcher: Sequence[str] = (),
) -> ServiceProcess:
    """Start ``python -m module args`` without waiting for it to be ready; ``launcher`` is
    prepended to the command (``ip netns exec NAME`` runs it in a network namespace)."""
    return spawn_command(
        name,
        [sys.executable, "-m", module, *args],
        ready_text=ready_text,
        env=env,
        launcher=launcher,
    )


def spawn_command(
    name: str,
    command: Sequence[str],
    *,
    ready_text: str,
    env: Mapping[str, str] | None = None,
    launcher: Sequence[str] = (),
) -> ServiceProcess:
    """Start ``launcher + command`` without waiting for it to be ready."""
    process = subprocess.Popen(
        [*launcher, *command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SPIDER_LOG_LEVEL": "INFO", **(env or {})},
        # Its own process group, so that a SIGKILL of an EM can take its executors with it
        # (a crashed node loses its executors too).
        start_new_session=True,
    )
    service = ServiceProcess(name, process, ready_text)
    service.reader = threading.Thread(target=service._drain, daemon=True)
    service.reader.start()
    return service
