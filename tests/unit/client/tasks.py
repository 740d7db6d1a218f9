"""Tasks the client tests build jobs from (their package is ``tests``, the top-level module)."""

from __future__ import annotations

import attrs

from spider.tdl import TaskContext, int32, task


@attrs.frozen
class Point:
    x: float
    y: float


@task(name="math::add")
def add(a: int, b: int) -> int:
    return a + b


@task(name="math::double")
def double(x: int) -> int:
    return 2 * x


@task(name="math::split")
def split(x: int) -> tuple[int, int]:
    return x // 2, x - x // 2


@task(name="geo::shift")
def shift(p: Point, by: float) -> Point:
    return Point(p.x + by, p.y + by)


@task(name="geo::norm")
def norm(p: Point) -> float:
    return float((p.x**2 + p.y**2) ** 0.5)


@task
def narrow(x: int32) -> int32:
    return x


@task
def names(items: list[bytes], table: dict[int, float]) -> list[bytes]:
    return [item for item in items if len(item) in table]


@task
def publish(ctx: TaskContext) -> None:
    pass


@task
def fails(x: int) -> int:
    raise ValueError(f"cannot handle {x}")
