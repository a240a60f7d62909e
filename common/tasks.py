"""Every background task of a service runs under one supervisor, so none can die silently.

Three policies, chosen per task:
  * ``spawn(name, factory)``: long-lived. An exception is logged with its traceback at ERROR,
    counted in ``zt_task_failures_total{service,task}``, and the task is started again from
    ``factory()`` after a backoff (``common.backoff``: exponential, jittered, reset after a run
    that lasted longer than the maximum delay). A normal return ends it.
  * ``spawn(name, factory, fatal=True)``: must not restart. An exception is logged and counted,
    and the service fails loudly (``on_fatal``: the service stops with a non-zero exit code, so
    supervisord restarts the whole process).
  * ``run_once(name, coro)``: a one-shot job (placing an order, a replay, a retry loop). An
    exception is logged and counted; it is never re-run (re-running an order POST is not safe).

``name`` is a metric label: keep it low-cardinality (a role, never an id).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from common.backoff import Backoff
from common.clock import mono_ns

log = logging.getLogger(__name__)

TASK_FAILURES = Counter(
    "zt_task_failures_total", "Background tasks that ended with an exception", ["service", "task"]
)
TASK_RESTARTS = Counter("zt_task_restarts_total", "Background tasks started again", ["service", "task"])

CoroFactory = Callable[[], Coroutine[Any, Any, Any]]
OnFailure = Callable[[BaseException], None]


@dataclass
class TaskRecord:
    name: str
    running: bool = True
    failures: int = 0
    restarts: int = 0
    last_error: str = ""


class TaskSupervisor:
    def __init__(
        self,
        service: str,
        on_fatal: Callable[[str, BaseException], None] | None = None,
        restart_min_s: float = 0.1,
        restart_max_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.service = service
        self._on_fatal = on_fatal
        self._restart_min_s = restart_min_s
        self._restart_max_s = restart_max_s
        self._rng = rng
        self._tasks: set[asyncio.Task[Any]] = set()
        self.records: dict[str, TaskRecord] = {}

    def spawn(
        self,
        name: str,
        factory: CoroFactory,
        *,
        fatal: bool = False,
        on_failure: OnFailure | None = None,
    ) -> asyncio.Task[Any]:
        """Run ``factory()`` for as long as the service runs (see the module docstring).

        ``on_failure(exc)`` runs after each failure, before the restart (e.g. to show the failure
        in a status the task itself kept, like a feed's state)."""
        record = self.records[name] = TaskRecord(name)
        return self._track(self._supervise(record, factory, fatal, on_failure), name)

    def run_once(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A one-shot job: its exception is logged and counted, never lost, never re-run."""
        return self._track(self._once(name, coro), name)

    async def stop(self) -> None:
        """Cancel every task and wait for them (shutdown)."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def status(self) -> dict[str, dict[str, Any]]:
        return {
            r.name: {
                "running": r.running,
                "failures": r.failures,
                "restarts": r.restarts,
                "last_error": r.last_error,
            }
            for r in self.records.values()
        }

    @property
    def active(self) -> int:
        return len(self._tasks)

    # ---- machinery ----------------------------------------------------------------------------

    def _track(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.service}.{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _failed(self, name: str, exc: BaseException, what: str) -> None:
        TASK_FAILURES.labels(self.service, name).inc()
        log.error(
            what,
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"fields": {"task": name, "error": f"{type(exc).__name__}: {exc}"[:300]}},
        )

    async def _once(self, name: str, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(name, exc, "background job failed")
            return None

    async def _supervise(
        self, record: TaskRecord, factory: CoroFactory, fatal: bool, on_failure: OnFailure | None
    ) -> None:
        backoff = Backoff(self._restart_min_s, self._restart_max_s, self._rng)
        try:
            while True:
                started = mono_ns()
                try:
                    await factory()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    record.failures += 1
                    record.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    if fatal:
                        self._failed(record.name, exc, "task failed: the service stops")
                        if self._on_fatal is not None:
                            self._on_fatal(record.name, exc)
                        return
                    self._failed(record.name, exc, "task failed: restarting it")
                    if on_failure is not None:
                        try:
                            on_failure(exc)
                        except Exception:
                            log.exception(
                                "task failure callback failed", extra={"fields": {"task": record.name}}
                            )
                if mono_ns() - started > self._restart_max_s * 1e9:
                    backoff.reset()
                await asyncio.sleep(backoff.next_delay())
                record.restarts += 1
                TASK_RESTARTS.labels(self.service, record.name).inc()
        finally:
            record.running = False
