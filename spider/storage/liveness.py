"""Execution-manager liveness on the storage side: registration, heartbeats, declared deaths.

The database is the authority (an EM is Alive until a sweep finds its last heartbeat older than
the cutoff, then Dead forever). This object caches what it learned: EMs known alive skip the
database on each instance registration, and EMs declared dead by this process are remembered so
that a registration racing the sweep that killed its EM is refused instead of leaving an
instance no sweep would look at again.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import attrs
import trio

from spider.core.ids import ExecutionManagerId
from spider.storage.errors import BadRequest, EmDead
from spider.storage.persistence import Persistence


@attrs.define(eq=False)
class ExecutionManagerLiveness:
    """Registers EMs, records heartbeats and declares stale EMs dead."""

    persistence: Persistence
    clock: Callable[[], float]
    """Wall-clock seconds, as stored in the database."""
    stale_cutoff: float
    _alive: set[ExecutionManagerId] = attrs.field(factory=set)
    _dead: set[ExecutionManagerId] = attrs.field(factory=set)

    async def register(self, ip_address: str) -> ExecutionManagerId:
        """Register a new EM (a new id every time) and consider it alive."""
        try:
            ipaddress.ip_address(ip_address)
        except ValueError as exc:
            raise BadRequest(f"ip_address {ip_address!r} is not an IPv4 or IPv6 address") from exc
        em_id = await self.persistence.register_execution_manager(ip_address, self.clock())
        self._alive.add(em_id)
        return em_id

    async def heartbeat(self, em_id: ExecutionManagerId) -> None:
        """Record a heartbeat; ``IllegalEmId`` if unknown, ``EmDead`` if declared dead."""
        if em_id in self._dead:
            await trio.lowlevel.checkpoint()
            raise EmDead(em_id)
        await self.persistence.heartbeat_execution_manager(em_id, self.clock())

    async def require_alive(self, em_id: ExecutionManagerId) -> None:
        """Raise ``IllegalEmId`` for an unknown EM and ``EmDead`` for a dead one.

        The database is asked once per EM and process; afterwards the answer comes from memory.
        """
        if em_id in self._alive:
            await trio.lowlevel.checkpoint()
            return
        if em_id not in self._dead:
            alive = await self.persistence.is_execution_manager_alive(em_id)
            # A sweep may have declared it dead while the query ran: re-check after the await.
            if alive and em_id not in self._dead:
                self._alive.add(em_id)
                return
            self._dead.add(em_id)
        raise EmDead(em_id)

    def is_dead(self, em_id: ExecutionManagerId) -> bool:
        """True if this process has seen ``em_id`` declared dead."""
        return em_id in self._dead

    def stale_before(self) -> float:
        """The wall time a last heartbeat must be older than for its EM to be declared dead.

        Normally the cutoff before now. A database outage stops every heartbeat from being
        recorded, so while one lasts, and for one cutoff after it ended (time for each EM's next
        heartbeat to land), only EMs already silent for a cutoff when it began are stale.
        """
        now = self.clock()
        outage = self.persistence.outage
        began: float | None = outage.since_wall
        if (
            began is None
            and outage.last is not None
            and now < outage.last.ended_wall + (self.stale_cutoff)
        ):
            began = outage.last.started_wall
        stale_before = now - self.stale_cutoff
        return stale_before if began is None else min(stale_before, began - self.stale_cutoff)

    async def declare_stale_dead(self) -> list[ExecutionManagerId]:
        """Mark EMs whose last heartbeat is older than ``stale_before()`` Dead; return the new
        ones."""
        newly_dead = await self.persistence.mark_dead_execution_managers(self.stale_before())
        for em_id in newly_dead:
            self._alive.discard(em_id)
            self._dead.add(em_id)
        return newly_dead
