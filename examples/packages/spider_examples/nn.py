"""Neurons of a dense network, after upstream Spider's ``nn`` example.

Each task is one neuron: ``activation(BIAS + sum(WEIGHTS[k] * x[k]))`` over ``FAN_IN`` inputs,
with fixed weights, so a job's outputs can be recomputed exactly by calling these functions in
process. Upstream uses 25 inputs per neuron; 5 keeps the signatures readable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from spider.tdl import TaskContext, task

from ._journal import journaled

FAN_IN = 5
WEIGHTS = tuple((k + 1) * 0.01 * (-1) ** k for k in range(FAN_IN))  # 0.01, -0.02, 0.03, ...
BIAS = 0.5


def _weighted_sum(inputs: Sequence[float]) -> float:
    total = BIAS
    for weight, x in zip(WEIGHTS, inputs, strict=True):
        total += weight * x
    return total


@task(name="neuron::dense_relu")
def dense_relu(ctx: TaskContext, x0: float, x1: float, x2: float, x3: float, x4: float) -> float:
    """A neuron with the ReLU activation."""
    with journaled(ctx):
        return max(0.0, _weighted_sum((x0, x1, x2, x3, x4)))


@task(name="neuron::dense_sigmoid")
def dense_sigmoid(ctx: TaskContext, x0: float, x1: float, x2: float, x3: float, x4: float) -> float:
    """A neuron with the logistic activation."""
    with journaled(ctx):
        return 1.0 / (1.0 + math.exp(-_weighted_sum((x0, x1, x2, x3, x4))))


@task(name="neuron::dense_identity")
def dense_identity(
    ctx: TaskContext, x0: float, x1: float, x2: float, x3: float, x4: float
) -> float:
    """A neuron without activation."""
    with journaled(ctx):
        return _weighted_sum((x0, x1, x2, x3, x4))


NeuronTask = Callable[[TaskContext, float, float, float, float, float], float]


def neuron_task_for_layer(layer: int) -> NeuronTask:
    """Upstream's activations by layer: ReLU, sigmoid, identity, then again from ReLU."""
    tasks: tuple[NeuronTask, ...] = (dense_relu, dense_sigmoid, dense_identity)
    return tasks[layer % 3]
