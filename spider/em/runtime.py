"""``run_execution_manager``: the EM as a nursery tree.

docs/architecture.md, "The execution manager's nursery tree", draws the whole tree, from the
signal handlers to the pool's own tasks, and says what each way of stopping cancels in it; the
stop state that moves is docs/architecture.md, "How a service stops".

::

    register with storage                 # retried while storage is unreachable; a stop ends it
    nursery "services":
        the life's heartbeats             # liveness (supervised; fatal answers force the stop,
                                          # "declared dead" ends the life) and the scheduler's
        process pool:                     # opened once, kept across lives
            task deadline follower        # the stop's task deadline -> the pool
            each life, until a stop:      # spider/em/life.py
                revocation poller         # supervised; storage's revoked instances -> pool kills
                reporters' nursery        # report senders over a bounded queue of outcomes
                    dispatch loop per slot    # poll -> triage -> register -> run -> submit report
                # dispatch over: reports get `shutdown_drain` more seconds (less once forced)
                # declared dead: the life's work is cancelled (tasks killed, reports dropped),
                # Shutdown under its id, register again, the next life's heartbeats
        Shutdown RPC with every record    # shielded, bounded (less once forced); also after a failure
        cancel "services"

Nothing is detached: the report senders live in the reporters' nursery, so leaving it waits for
every report (bounded), and the ``Shutdown`` RPC runs after the last acknowledgement was pushed.
"""

from __future__ import annotations

import logging
from typing import Final

import attrs
import trio
from trio_util import move_on_when

from spider.core.exception_groups import leaves, leaves_if_only
from spider.core.ids import ExecutionManagerId
from spider.core.retry import FailedAttempt, retry, retry_on
from spider.core.supervision import supervise
from spider.em import metrics
from spider.em._retry import RetryPolicy, call_with_retry
from spider.em.assignment import Registration
from spider.em.dispatch import Dispatcher
from spider.em.errors import (
    DispatchFailed,
    EmClientError,
    ExecutorsUnavailable,
    RegistrationRefused,
    TransportError,
)
from spider.em.ledger import AssignmentLedger
from spider.em.life import EmLife, OnDeclaredDead
from spider.em.pool import ExecutorSpawnError
from spider.em.ports import (
    EmClients,
    LivenessClient,
    PoolOpener,
    SchedulerClient,
    TaskPool,
    TaskSlot,
)
from spider.em.registration import Registrar
from spider.em.reporting import DEFAULT_MAX_PENDING_REPORTS, DEFAULT_REPORT_SENDERS, Reporter
from spider.em.revocation import REVOCATION_POLL_WAIT_MS, RevocationPoller
from spider.em.stop import EmStop
from spider.observability import READINESS
from spider.observability.readiness import Condition

LOGGER: Final = logging.getLogger("spider.em")

PLACEHOLDER_IP: Final = "0.0.0.0"
"""What upstream registers as the EM's address (a placeholder, upstream issue #406)."""

_TRANSPORT: Final = retry_on(TransportError)


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"RuntimeSettings.{attribute.name} must be > 0, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"RuntimeSettings.{attribute.name} must be >= 0, got {value!r}")


def _positive_count(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not value >= 1:
        raise ValueError(f"RuntimeSettings.{attribute.name} must be >= 1, got {value!r}")


def _non_negative_count(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _non_negative_ms(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not value >= 0:
        raise ValueError(f"RuntimeSettings.{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class ExtensionSettings:
    """How the EM uses Spider-py's execution extension (``protos/spider_py/execution.proto``)."""

    enabled: bool = True
    """Call ``NextTasks`` and ``ReportTaskOutcomes`` first; peers that answer UNIMPLEMENTED
    (upstream Spider) get the single RPCs from then on. False: the single RPCs only."""
    max_tasks_per_poll: int = attrs.field(default=4, validator=_positive_count)
    """The most assignments one ``NextTasks`` asks for."""
    prefetch_per_slot: int = attrs.field(default=1, validator=_non_negative_count)
    """Assignments received ahead of a free slot, per slot: the next task is at hand when one
    ends. They are not registered (their timeouts do not run) until a slot starts them."""
    max_report_batch: int = attrs.field(default=64, validator=_positive_count)
    """The most outcomes one ``ReportTaskOutcomes`` carries."""
    revocation_poll_wait_ms: int = attrs.field(
        default=REVOCATION_POLL_WAIT_MS, validator=_positive_count
    )
    """How long one ``WaitRevokedInstances`` long poll may wait at storage (which caps it)."""


@attrs.frozen
class RuntimeSettings:
    """The runtime's knobs (``spider.em.config`` builds them from the YAML file)."""

    scheduler_poll_wait_ms: int = attrs.field(default=1000, validator=_non_negative_ms)
    """How long each ``NextTask`` RPC may wait for work at the scheduler."""
    storage_heartbeat_interval: float = attrs.field(default=1.0, validator=_positive)
    scheduler_heartbeat_interval: float = attrs.field(default=1.0, validator=_positive)
    shutdown_drain: float = attrs.field(default=5.0, validator=_non_negative)
    """Seconds reports may take to drain once every dispatch loop has stopped."""
    shutdown_rpc_bound: float = attrs.field(default=10.0, validator=_positive)
    """Seconds the ``Shutdown`` RPC may take, transport retries included."""
    max_pending_reports: int = attrs.field(
        default=DEFAULT_MAX_PENDING_REPORTS, validator=_positive_count
    )
    """Outcomes queued or being reported before a dispatch loop waits to hand over its own."""
    report_senders: int = attrs.field(default=DEFAULT_REPORT_SENDERS, validator=_positive_count)
    """Reports sent to storage at the same time."""
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    extension: ExtensionSettings = attrs.field(factory=ExtensionSettings)
    ip_address: str = PLACEHOLDER_IP
    on_declared_dead: OnDeclaredDead = OnDeclaredDead.REJOIN
    """Register again under a new id when storage declares the EM dead, or stop (``exit``)."""


async def run_execution_manager(
    settings: RuntimeSettings,
    clients: EmClients,
    open_pool: PoolOpener,
    stop: EmStop,
) -> None:
    """Register, serve assignments until ``stop`` is requested, acknowledge, return.

    Storage declaring the EM dead ends one life: the EM registers again under a new id and
    serves on with the same pool (``on_declared_dead: rejoin``, spider/em/life.py).

    Returns after a requested stop (also one that arrived before a registration completed).
    Raises ``ExecutionManagerError`` when the EM must exit non-zero: storage declared it dead
    with ``on_declared_dead: exit``, does not know its id or went back in session
    (``LivenessLost``), refused to register it (``RegistrationRefused``), the executors cannot
    start (``ExecutorsUnavailable``), or a dispatch loop broke (``DispatchFailed``).
    """
    with READINESS.condition("execution manager", "registering with storage") as readiness:
        await _run(settings, clients, open_pool, stop, readiness)


async def _run(
    settings: RuntimeSettings,
    clients: EmClients,
    open_pool: PoolOpener,
    stop: EmStop,
    readiness: Condition,
) -> None:
    registration = await _register(clients.liveness, settings, stop)
    if registration is None:
        LOGGER.warning("Stopped before registering with storage.")
        return
    LOGGER.info(
        "Execution manager registered with storage.",
        extra={"em_id": registration.em_id, "session_id": registration.session},
    )
    first = EmLife.begin(registration, clients.liveness, settings.storage_heartbeat_interval)
    life: EmLife | None = first
    last_id = registration.em_id
    delivered = 0
    try:
        async with trio.open_nursery() as services:
            await _keep_alive(services, first, clients, settings, stop)
            try:
                async with open_pool() as pool, trio.open_nursery() as serving:
                    serving.start_soon(stop.follow_task_deadline, pool.set_shutdown_deadline)
                    while life is not None:
                        readiness.ready()
                        delivered += await _serve(life, clients, pool, settings, stop)
                        if not life.lost or stop.requested:
                            readiness.not_ready("stopping")
                            break
                        readiness.not_ready("declared dead by storage; registering again")
                        life = await _rejoin(life, services, clients, settings, stop)
                        last_id = last_id if life is None else life.em_id
                    serving.cancel_scope.cancel(reason="no task runs any more")
            finally:
                if life is not None:
                    await _shut_down(clients.scheduler, life, settings, stop)
            services.cancel_scope.cancel(reason="the execution manager has stopped")
    except BaseExceptionGroup as group:
        spawn_failures = leaves_if_only(group, ExecutorSpawnError)
        if spawn_failures is None:
            raise
        raise ExecutorsUnavailable(
            f"the task executors could not start: {spawn_failures[0]}; check "
            "task_executor.bin_path and task_executor.package_dir"
        ) from group
    if stop.error is not None:
        raise stop.error
    LOGGER.info(
        "Execution manager stopped.",
        extra={"em_id": last_id, "reports_delivered": delivered},
    )


async def _keep_alive(
    services: trio.Nursery,
    life: EmLife,
    clients: EmClients,
    settings: RuntimeSettings,
    stop: EmStop,
) -> None:
    """Start ``life``'s heartbeats in ``services``."""
    await services.start(
        life.keep_alive,
        clients.scheduler,
        settings.scheduler_heartbeat_interval,
        settings.on_declared_dead,
        stop,
    )


async def _rejoin(
    old: EmLife,
    services: trio.Nursery,
    clients: EmClients,
    settings: RuntimeSettings,
    stop: EmStop,
) -> EmLife | None:
    """End ``old`` (declared dead) and register again; the new life, heartbeating, or ``None``
    if a stop came first or storage refused the registration (then the stop has its error)."""
    old.end_heartbeats()
    await _shut_down(clients.scheduler, old, settings, stop)
    try:
        registration = await _register(clients.liveness, settings, stop)
    except RegistrationRefused as refused:
        stop.fail(refused, force=False)
        return None
    if registration is None:
        LOGGER.warning(
            "Stopped before registering with storage again.", extra={"old_em_id": old.em_id}
        )
        return None
    gone = old.silent_for()
    LOGGER.warning(
        "Storage had declared execution manager %d dead (no heartbeat reached it for %.1f s); "
        "registered again as execution manager %d, keeping the executors. Storage rescheduled "
        "the work held under the old id; its outcomes are dropped.",
        old.em_id,
        gone,
        registration.em_id,
        extra={
            "old_em_id": old.em_id,
            "em_id": registration.em_id,
            "gone_s": round(gone, 3),
            "session_id": registration.session,
        },
    )
    life = EmLife.begin(registration, clients.liveness, settings.storage_heartbeat_interval)
    await _keep_alive(services, life, clients, settings, stop)
    return life


async def _register(
    client: LivenessClient, settings: RuntimeSettings, stop: EmStop
) -> Registration | None:
    """Register with storage, retrying while it is unreachable; ``None`` if stopped first."""
    registration: Registration | None = None
    refusal: EmClientError | None = None
    async with stop.cancelled_on_stop():
        try:
            registration = await call_with_retry(
                lambda: client.register(settings.ip_address),
                policy=settings.retry,
                what="RegisterExecutionManager",
                fields={"ip_address": settings.ip_address},
            )
        except EmClientError as error:
            refusal = error  # raised out here, not inside the race's nursery (a group)
    if refusal is not None:
        raise RegistrationRefused(
            f"storage refused to register this execution manager: {refusal}"
        ) from refusal
    return registration


async def _serve(
    life: EmLife,
    clients: EmClients,
    pool: TaskPool,
    settings: RuntimeSettings,
    stop: EmStop,
) -> int:
    """Run one dispatch loop per slot until stopped, then drain the reports; return how many
    storage accepted. Storage declaring ``life`` dead cancels it all: running tasks are killed,
    unsent outcomes dropped (they are fenced), prefetched assignments left unacknowledged.

    The life's revocation poller runs as long as its tasks may: through the shutdown grace,
    until the reports have drained."""
    reporter = Reporter(
        clients.storage,
        life.tracker,
        life.liveness.refresh,
        settings.retry,
        max_pending=settings.max_pending_reports,
        senders=settings.report_senders,
        max_batch=settings.extension.max_report_batch,
        storage_extension=settings.extension.enabled,
    )
    dispatcher = Dispatcher(
        em_id=life.em_id,
        scheduler=clients.scheduler,
        registrar=Registrar(
            clients.storage, life.em_id, storage_extension=settings.extension.enabled
        ),
        tracker=life.tracker,
        ledger=life.ledger,
        reporter=reporter,
        stop=stop,
        refresh_liveness=life.liveness.refresh,
        poll_wait_ms=settings.scheduler_poll_wait_ms,
        policy=settings.retry,
        scheduler_extension=settings.extension.enabled,
        max_tasks_per_poll=settings.extension.max_tasks_per_poll,
        prefetch_limit=settings.extension.prefetch_per_slot * len(pool.slots),
    )

    gauges = metrics.collecting(
        running=lambda: sum(slot.busy for slot in pool.slots),
        reports=lambda: reporter.in_flight,
        records=lambda: len(life.ledger),
    )
    with gauges:
        await _serve_life(life, clients, pool, settings, stop, reporter, dispatcher)
    if life.lost:
        dispatcher.abandon_prefetched()
    return reporter.delivered


async def _serve_life(
    life: EmLife,
    clients: EmClients,
    pool: TaskPool,
    settings: RuntimeSettings,
    stop: EmStop,
    reporter: Reporter,
    dispatcher: Dispatcher,
) -> None:
    async def declared_dead() -> None:
        await life.wait_lost()
        reporter.abandon(f"storage declared execution manager {life.em_id} dead")

    async with move_on_when(declared_dead), trio.open_nursery() as revocations:
        if settings.extension.enabled and clients.revocation is not None:
            poller = RevocationPoller(
                clients.revocation,
                life.em_id,
                settings.retry,
                settings.extension.revocation_poll_wait_ms,
            )
            revocations.start_soon(supervise, "revocation poller", poller.run, pool)
        async with stop.bounded_when_forced() as drain, trio.open_nursery() as reporters:
            reporters.start_soon(reporter.run)
            async with trio.open_nursery() as dispatchers:
                for slot in pool.slots:
                    dispatchers.start_soon(_dispatch_until_stopped, dispatcher, slot)
            dispatcher.abandon_prefetched()
            reporter.close()
            drain.deadline = min(drain.deadline, trio.current_time() + settings.shutdown_drain)
            if reporter.in_flight:
                LOGGER.info(
                    "Waiting up to %g s for %d outcome reports.",
                    drain.deadline - trio.current_time(),
                    reporter.in_flight,
                )
        if drain.cancelled_caught:
            LOGGER.error(
                "Gave up on the outcome reports still in flight at shutdown; storage "
                "retries those tasks after their timeouts."
            )
        revocations.cancel_scope.cancel(reason="no task of this life runs any more")


async def _shut_down(
    scheduler: SchedulerClient, life: EmLife, settings: RuntimeSettings, stop: EmStop
) -> None:
    """``Shutdown`` under ``life``'s id with its ledger: shielded, bounded (less once forced)."""
    bound = stop.forced_bound if stop.forced else settings.shutdown_rpc_bound
    async with stop.bounded_when_forced(deadline=trio.current_time() + bound, shield=True) as scope:
        await _acknowledge_all(scheduler, life.em_id, life.ledger, settings.retry)
    if scope.cancelled_caught:
        LOGGER.error(
            "Shutdown RPC got no answer within %g s; %d acknowledgements were not "
            "delivered and the scheduler reschedules that work once it considers "
            "this execution manager dead.",
            bound,
            len(life.ledger),
            extra={"em_id": life.em_id, "unacknowledged": len(life.ledger)},
        )


async def _dispatch_until_stopped(dispatcher: Dispatcher, slot: TaskSlot) -> None:
    """One slot's dispatch loop; a bug in it stops the EM gracefully instead of at once."""
    try:
        await dispatcher.run_slot(slot)
    except Exception as raised:
        # ``run_slot`` races the stop in a nursery: report the bug, not its group.
        found = leaves(raised)
        exc = found[0] if len(found) == 1 else raised
        LOGGER.exception(
            "The dispatch loop of slot %d failed; stopping the execution manager.",
            slot.index,
            extra={"slot": slot.index},
        )
        failure = DispatchFailed(f"the dispatch loop of slot {slot.index} failed: {exc!r}")
        failure.__cause__ = exc
        dispatcher.stop.fail(failure, force=False)


async def _acknowledge_all(
    scheduler: SchedulerClient,
    em_id: ExecutionManagerId,
    ledger: AssignmentLedger,
    policy: RetryPolicy,
) -> None:
    """``Shutdown`` with every record in the ledger, retrying transport failures."""

    async def shutdown() -> int:
        with ledger.lend_all() as records:
            await scheduler.shutdown(em_id, records)
        return len(records)

    def log(failed: FailedAttempt) -> None:
        LOGGER.warning(
            "Shutdown RPC failed; retrying in %.3f s: %s",
            failed.delay,
            failed.error,
            extra={"em_id": em_id, "error": str(failed.error), "retry_delay_s": failed.delay},
        )

    try:
        acknowledged = await retry(
            shutdown, delays=policy.backoff.delays, rule=_TRANSPORT, on_retry=log
        )
    except EmClientError as error:
        LOGGER.warning(
            "Failed to notify scheduler shutdown: %s",
            error,
            extra={"em_id": em_id, "error": str(error), "unacknowledged": len(ledger)},
        )
    else:
        LOGGER.info(
            "Scheduler notified of the shutdown.",
            extra={"em_id": em_id, "acknowledged": acknowledged},
        )
