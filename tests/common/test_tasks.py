"""The task supervisor: a task that raises is logged, counted and restarted; a fatal one stops the
service loudly; a one-shot job's exception is counted, never lost, never re-run."""

from __future__ import annotations

import asyncio
import logging

import pytest
import uvloop

from common.tasks import TASK_FAILURES, TASK_RESTARTS, TaskSupervisor


def _count(metric: object, service: str, task: str) -> float:
    return metric.labels(service, task)._value.get()  # type: ignore[attr-defined]


def test_a_task_that_raises_is_restarted_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) <= 3:
            raise RuntimeError(f"boom {len(runs)}")
        await asyncio.sleep(3600)  # the fourth run stays up

    async def main() -> TaskSupervisor:
        sup = TaskSupervisor("svc_restart", restart_min_s=0.001, restart_max_s=0.01)
        sup.spawn("flaky", flaky)
        for _ in range(500):
            if len(runs) >= 4:
                break
            await asyncio.sleep(0.005)
        status = sup.status()["flaky"]
        assert status["running"] and status["failures"] == 3 and status["restarts"] == 3
        assert status["last_error"] == "RuntimeError: boom 3"
        await sup.stop()
        return sup

    before = _count(TASK_FAILURES, "svc_restart", "flaky")
    with caplog.at_level(logging.ERROR, logger="common.tasks"):
        sup = uvloop.run(main())
    assert len(runs) == 4
    assert _count(TASK_FAILURES, "svc_restart", "flaky") - before == 3
    assert _count(TASK_RESTARTS, "svc_restart", "flaky") == 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3 and all(r.exc_info for r in errors)  # with the traceback
    assert sup.active == 0 and not sup.status()["flaky"]["running"]


def test_a_fatal_task_fails_the_service_loudly() -> None:
    fatal: list[tuple[str, str]] = []

    async def broken() -> None:
        raise ValueError("cannot go on")

    async def main() -> None:
        sup = TaskSupervisor("svc_fatal", on_fatal=lambda name, exc: fatal.append((name, str(exc))))
        task = sup.spawn("must_not_restart", broken, fatal=True)
        await task
        assert sup.status()["must_not_restart"] == {
            "running": False, "failures": 1, "restarts": 0, "last_error": "ValueError: cannot go on",
        }  # fmt: skip

    uvloop.run(main())
    assert fatal == [("must_not_restart", "cannot go on")]
    assert _count(TASK_FAILURES, "svc_fatal", "must_not_restart") == 1


def test_a_one_shot_job_failure_is_counted_not_lost_and_not_rerun() -> None:
    calls: list[int] = []
    unretrieved: list[dict[str, object]] = []

    async def job() -> None:
        calls.append(1)
        raise KeyError("x")

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: unretrieved.append(ctx))
        sup = TaskSupervisor("svc_once")
        assert await sup.run_once("job", job()) is None
        await asyncio.sleep(0.01)

    uvloop.run(main())
    assert calls == [1]
    assert _count(TASK_FAILURES, "svc_once", "job") == 1
    assert unretrieved == []  # no "Task exception was never retrieved"


def test_a_service_whose_fatal_task_failed_exits_non_zero(tmp_path: object) -> None:
    from common.config import Settings
    from common.service import Service

    class Doomed(Service):
        name = "signal"

        async def start(self) -> None:
            async def die() -> None:
                raise RuntimeError("the one thing this service does")

            self.tasks.spawn("core", die, fatal=True)

    async def main() -> int:
        svc = Doomed(Settings(zmq={"run_dir": tmp_path}, metrics={"base_port": 0}))
        await asyncio.wait_for(svc.run_forever(), 5)
        return svc.exit_code

    assert uvloop.run(main()) == 1
