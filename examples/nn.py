"""A small dense neural network, after upstream Spider's ``nn`` end-to-end workload: every
neuron is a task, and each neuron of a layer reads ``FAN_IN`` outputs of the layer before.

    spider submit examples/nn.py --wait
"""

from __future__ import annotations

import random

import _paths  # noqa: F401  (makes spider_examples importable)
from spider_examples import FAN_IN, neuron_task_for_layer

from spider.client import JobBuilder, TaskOutput

LAYERS = 4
WIDTH = 8


def job(layers: int = LAYERS, width: int = WIDTH, seed: int = 7) -> JobBuilder:
    """``layers`` x ``width`` neurons; the outputs are the last layer's, in neuron order."""
    rng = random.Random(seed)
    builder = JobBuilder()
    first = neuron_task_for_layer(0)
    previous: list[TaskOutput] = [
        builder.add(first, *(rng.uniform(-1.0, 1.0) for _ in range(FAN_IN)))[0]
        for _ in range(width)
    ]
    for layer in range(1, layers):
        neuron = neuron_task_for_layer(layer)
        # Every neuron reads FAN_IN distinct neurons of the layer before.
        previous = [builder.add(neuron, *rng.sample(previous, FAN_IN))[0] for _ in range(width)]
    return builder
