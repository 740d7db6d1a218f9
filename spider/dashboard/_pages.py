"""The dashboard's HTTP routes: one static page with its script and style, and a JSON API.

Routes run on the HTTP server's threads (``spider.observability.serve_http``); the API's reads
run on the Trio loop through ``trio.from_thread.run``, each bounded, so a slow storage makes a
page wait at most ``CALL_DEADLINE_SEC`` and never holds the loop.

| Path | Answer |
|---|---|
| ``/`` | the page (``static/index.html``); the script draws every view from the API |
| ``/static/app.js``, ``/static/style.css`` | the script and style |
| ``/api/overview`` | storage, EMs, queues, jobs by state, database, throughput points |
| ``/api/jobs?state=S&group=N&limit=N&page_token=T`` | a page of the job catalog, newest first |
| ``/api/jobs/ID`` | the job's state, tasks (with parents, states, times, errors) and error |
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from importlib import resources
from typing import Any, Final, TypeVar

import trio

from spider.client import (
    JobNotFoundError,
    JobState,
    NotAvailableError,
    RequestRejectedError,
    StorageUnavailableError,
)
from spider.client.errors import ClientError
from spider.dashboard._data import MAX_LISTED_JOBS, DashboardData
from spider.observability import Answer, HttpRequest, Route

CALL_DEADLINE_SEC: Final = 10.0
"""The longest an API read may take before the page is told storage did not answer."""

_STATIC: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_T = TypeVar("_T")


def dashboard_pages(data: DashboardData, token: trio.lowlevel.TrioToken) -> dict[str, Route]:
    """The dashboard's routes, reading through ``data`` on the Trio run of ``token``."""

    def on_loop(read: Callable[[], Awaitable[_T]]) -> _T:
        async def bounded() -> _T:
            with trio.fail_after(CALL_DEADLINE_SEC):
                return await read()

        return trio.from_thread.run(bounded, trio_token=token)

    def api(answer: Callable[[HttpRequest], Any]) -> Route:
        def route(request: HttpRequest) -> Answer:
            try:
                return _json(HTTPStatus.OK, answer(request))
            except (ValueError, RequestRejectedError) as error:
                return _json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
            except JobNotFoundError as error:
                return _json(HTTPStatus.NOT_FOUND, {"error": str(error)})
            except NotAvailableError as error:
                return _json(HTTPStatus.NOT_IMPLEMENTED, {"error": str(error)})
            except (StorageUnavailableError, trio.TooSlowError, trio.RunFinishedError) as error:
                message = str(error) or "storage did not answer in time"
                return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": message})
            except ClientError as error:
                return _json(HTTPStatus.BAD_GATEWAY, {"error": str(error)})

        return route

    def overview(request: HttpRequest) -> Any:
        return data.overview()

    def jobs(request: HttpRequest) -> Any:
        states = [_job_state(name) for name in request.query.get("state", [])]
        group = _number(request.first("group"), "group")
        limit = _number(request.first("limit"), "limit") or 100
        if not 1 <= limit <= MAX_LISTED_JOBS:
            raise ValueError(f"limit {limit}: give 1 to {MAX_LISTED_JOBS}")
        token = _number(request.first("page_token"), "page_token")
        return on_loop(lambda: data.jobs(states, group, limit, token))

    def job(request: HttpRequest) -> Any:
        job_id = _number(request.path.removeprefix("/api/jobs/"), "job id")
        if job_id is None:
            raise ValueError("give a job id: /api/jobs/ID")
        return on_loop(lambda: data.job(job_id))

    return {
        "/": lambda request: _static("index.html"),
        "/static/": lambda request: _static(request.path.removeprefix("/static/")),
        "/api/overview": api(overview),
        "/api/jobs": api(jobs),
        "/api/jobs/": api(job),
    }


def _static(name: str) -> Answer:
    content_type = _STATIC.get(name)
    if content_type is None:
        return HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"no such file\n"
    body = resources.files("spider.dashboard").joinpath("static", name).read_bytes()
    return HTTPStatus.OK, content_type, body


def _json(status: HTTPStatus, document: Any) -> Answer:
    return status, "application/json", json.dumps(document, ensure_ascii=False).encode()


def _number(text: str | None, what: str) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 20:
        raise ValueError(f"{what} {text[:32]!r} is not a number")
    return int(text)


def _job_state(name: str) -> JobState:
    for state in JobState:
        if state.value.lower() == name.lower():
            return state
    raise ValueError(
        f"state {name[:32]!r} is not a job state; choose from "
        + ", ".join(state.value for state in JobState)
    )
