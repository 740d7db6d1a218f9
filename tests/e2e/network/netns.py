"""Network namespaces on a bridge, and the faults injected into them: partitions and packet
loss with nftables, latency with netem where the kernel has it, else with delay relays.

Every service gets a namespace ``<prefix>-<role>`` with one veth whose peer hangs off a bridge in
this (the root) namespace; the bridge has the subnet's ``.1``, so the test process reaches every
service by its address. Each namespace gets an nftables table ``inet fault`` whose two chains
(input, output) carry the faults; healing flushes them. Names carry this process's id, and
namespaces left by a dead process are removed before new ones are made.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import itertools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from tests.e2e.cluster.service_process import ServiceProcess, spawn_command

PREFIX = "spnf"
ROLES = ("storage", "scheduler", "em-0", "em-1")
HOST_NUMBERS = {"storage": 10, "scheduler": 11, "em-0": 20, "em-1": 21}
RELAY = Path(__file__).with_name("delay_relay.py")
RELAY_READY = "relay listening"
COMMAND_TIMEOUT = 20.0
_OWNER = re.compile(rf"^{PREFIX}(\d+)[a-z]")
"""A name's owning process id: ``spnf<pid><letter>...``; the letter counts this process's
networks, so a new one never waits for the kernel to finish removing the last one's links."""
_NETWORKS = itertools.count()
LATENCY_MS = 50
"""The delay the latency fault adds each way (a relay is started with it, and switched)."""

_FAULT_TABLE = """
table inet fault {
    chain input { type filter hook input priority 0; policy accept; }
    chain output { type filter hook output priority 0; policy accept; }
}
"""


def run(*command: str, stdin: str | None = None) -> str:
    """Run a command; its stdout. Fails with its stderr."""
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def missing_requirement() -> str | None:
    """Why this machine cannot run the suite, or None if it can."""
    if os.geteuid() != 0:
        return "the network-fault suite needs root (network namespaces, nftables)"
    for tool in ("ip", "nft", "tc"):
        if not any((Path(d) / tool).exists() for d in ("/usr/sbin", "/sbin", "/usr/bin")):
            return f"the network-fault suite needs `{tool}`: run scripts/ci-install-netfaults.sh"
    probe = f"{PREFIX}probe{os.getpid()}"
    try:
        run("ip", "netns", "add", probe)
        try:
            run("ip", "netns", "exec", probe, "nft", "-f", "-", stdin=_FAULT_TABLE)
        finally:
            run("ip", "netns", "del", probe)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        return f"network namespaces or nftables do not work here: {error}"
    return None


class LatencyMethod(enum.StrEnum):
    """How latency is injected: the kernel's netem qdisc, or relays in the servers' namespaces."""

    NETEM = "netem"
    RELAY = "relay"


def _netem_available(namespace: str) -> bool:
    try:
        run("ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
            "delay", "1ms")  # fmt: skip
    except RuntimeError:
        return False
    run("ip", "netns", "exec", namespace, "tc", "qdisc", "del", "dev", "lo", "root")
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> None:
    """Delete namespaces and bridges of this suite whose process is gone (a killed run), and
    end the services it left running in them."""
    for line in run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        if _stale(name):
            for pid in run("ip", "netns", "pids", name).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            run("ip", "netns", "del", name)
    for line in run("ip", "-o", "link", "show", "type", "bridge").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if _stale(name):
            run("ip", "link", "del", name)


def _stale(name: str) -> bool:
    owner = _OWNER.match(name)
    return owner is not None and not _pid_alive(int(owner.group(1)))


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.77-10.78.x.0 that no route of this namespace covers."""
    routes = [
        ipaddress.ip_network(line.split()[0], strict=False)
        for line in run("ip", "-4", "route", "show").splitlines()
        if line.split() and line.split()[0] != "default"
    ]
    for second in (77, 78):
        for third in range(256):
            subnet = ipaddress.IPv4Network(f"10.{second}.{third}.0/24")
            if not any(subnet.overlaps(route) for route in routes):
                return subnet
    raise RuntimeError("no free 10.77-78.x.0/24 subnet for the test network")


@attrs.define(eq=False)
class Network:
    """The namespaces, their addresses, and the faults in force."""

    subnet: ipaddress.IPv4Network
    token: str
    latency_method: LatencyMethod = LatencyMethod.RELAY
    relays: list[ServiceProcess] = attrs.field(factory=list)

    def namespace(self, role: str) -> str:
        return f"{PREFIX}{self.token}-{role}"

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.token}br"

    def address(self, role: str) -> str:
        return str(self.subnet.network_address + HOST_NUMBERS[role])

    def launcher(self, role: str) -> list[str]:
        """The command prefix that runs a process in ``role``'s namespace."""
        return ["ip", "netns", "exec", self.namespace(role)]

    def _in(self, role: str, *command: str, stdin: str | None = None) -> str:
        return run(*self.launcher(role), *command, stdin=stdin)

    def create(self) -> None:
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.subnet.network_address + 1}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for index, role in enumerate(ROLES):
            namespace = self.namespace(role)
            outside = f"{PREFIX}{self.token}v{index}"
            run("ip", "netns", "add", namespace)
            run("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns",
                namespace)  # fmt: skip
            run("ip", "link", "set", outside, "master", self.bridge, "up")
            self._in(role, "ip", "link", "set", "lo", "up")
            self._in(role, "ip", "addr", "add", f"{self.address(role)}/24", "dev", "eth0")
            self._in(role, "ip", "link", "set", "eth0", "up")
            self._in(role, "nft", "-f", "-", stdin=_FAULT_TABLE)
        if _netem_available(self.namespace(ROLES[0])):
            self.latency_method = LatencyMethod.NETEM

    def destroy(self) -> None:
        for relay in self.relays:
            relay.kill()
        for index in range(len(ROLES)):
            subprocess.run(["ip", "link", "del", f"{PREFIX}{self.token}v{index}"], check=False,
                           capture_output=True)  # fmt: skip
        for role in ROLES:
            subprocess.run(["ip", "netns", "del", self.namespace(role)], check=False)
        subprocess.run(["ip", "link", "del", self.bridge], check=False)

    def listen_host(self, role: str) -> str:
        """Where a server in ``role`` listens: its address, or loopback behind a relay."""
        return "127.0.0.1" if self.latency_method is LatencyMethod.RELAY else self.address(role)

    def start_relay(self, role: str, port: int) -> None:
        """With relays for latency: relay ``role``'s address to its loopback, on ``port``."""
        if self.latency_method is not LatencyMethod.RELAY:
            return
        command = [sys.executable, str(RELAY), self.address(role), str(port), "127.0.0.1"]
        relay = spawn_command(
            f"relay-{role}",
            [*command, str(port), str(LATENCY_MS)],
            ready_text=RELAY_READY,
            launcher=self.launcher(role),
        )
        self.relays.append(relay)
        relay.wait_ready()

    # Faults. Each adds rules or qdiscs; heal() removes all of them.

    def partition(self, role: str, peers: Sequence[str]) -> None:
        """Drop every packet between ``role`` and ``peers`` (both ways), silently."""
        rules = []
        for peer in peers:
            rules.append(f"add rule inet fault output ip daddr {self.address(peer)} drop")
            rules.append(f"add rule inet fault input ip saddr {self.address(peer)} drop")
        self._in(role, "nft", "-f", "-", stdin="\n".join(rules) + "\n")

    def isolate(self, role: str) -> None:
        """Drop every packet in and out of ``role``'s namespace but its loopback."""
        rules = [
            'add rule inet fault output oifname "eth0" drop',
            'add rule inet fault input iifname "eth0" drop',
        ]
        self._in(role, "nft", "-f", "-", stdin="\n".join(rules) + "\n")

    def loss(self, percent: int) -> None:
        """Drop ``percent``% of the packets every namespace sends on its veth."""
        rule = f'add rule inet fault output oifname "eth0" numgen random mod 100 < {percent} drop'
        for role in ROLES:
            self._in(role, "nft", "-f", "-", stdin=rule + "\n")

    def latency(self) -> None:
        """Delay traffic by ``LATENCY_MS`` each way: netem on every veth, or the relays."""
        if self.latency_method is LatencyMethod.NETEM:
            for role in ROLES:
                self._in(role, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay",
                         f"{LATENCY_MS}ms")  # fmt: skip
        else:
            for relay in self.relays:
                relay.process.send_signal(signal.SIGUSR1)

    def heal(self) -> None:
        for role in ROLES:
            self._in(role, "nft", "flush table inet fault")
            if self.latency_method is LatencyMethod.NETEM:
                subprocess.run([*self.launcher(role), "tc", "qdisc", "del", "dev", "eth0", "root"],
                               capture_output=True, check=False)  # fmt: skip
        if self.latency_method is LatencyMethod.RELAY:
            for relay in self.relays:
                relay.process.send_signal(signal.SIGUSR2)


@contextmanager
def test_network() -> Iterator[Network]:
    """Namespaces for storage, the scheduler and two EMs, removed afterwards."""
    remove_leftovers()
    letter = "abcdefghijklmnopqrstuvwxyz"[next(_NETWORKS) % 26]
    network = Network(_free_subnet(), f"{os.getpid()}{letter}")
    try:
        network.create()
        yield network
    finally:
        network.destroy()
