"""JSON job descriptions: the graph is Spider's JSON, inputs are encoded by its descriptors."""

from __future__ import annotations

import math
from typing import Any

import ormsgpack
import pytest

from spider.client import JobDefinitionError, job_from_json, payload_to_json
from spider.core import encode_task_graph, task_graph_to_json

GRAPH: dict[str, Any] = {
    "schema_version": "0.1.0",
    "tasks": [
        {
            "tdl_context": {"package": "p", "task_func": "f"},
            "inputs": [
                {"Value": {"Primitive": {"Int": "Int8"}}},
                {"Value": {"Primitive": {"Float": "Float64"}}},
                {"Value": {"Bytes": {}}},
                {
                    "Value": {
                        "Map": {
                            "key": {"Int": "Int64"},
                            "value": {"List": {"Primitive": "Boolean"}},
                        }
                    }
                },
            ],
            "outputs": [{"Value": {"Primitive": {"Float": "Float64"}}}],
            "input_sources": None,
        }
    ],
    "commit_task": None,
    "cleanup_task": None,
}


def test_inputs_are_encoded_by_the_graphs_types() -> None:
    description = job_from_json(
        {"graph": GRAPH, "inputs": [-3, 2, {"base64": "AAE="}, {"7": [True]}]}
    )
    assert description.input_payloads == (
        ormsgpack.packb(-3),
        ormsgpack.packb(2.0),
        ormsgpack.packb(b"\x00\x01"),
        ormsgpack.packb({7: [True]}, option=ormsgpack.OPT_NON_STR_KEYS),
    )
    assert description.output_annotations is None
    assert description.output_labels == ("f[0].0",)
    assert encode_task_graph(description.graph) == encode_task_graph(
        job_from_json({"graph": GRAPH, "inputs": [0, 0, "", {}]}).graph
    )
    assert '"Int8"' in task_graph_to_json(description.graph)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([300, 1.0, "", {}], "300 does not fit in Int8"),
        ([True, 1.0, "", {}], r"inputs\[0\]: expected an integer"),
        ([1, "x", "", {}], r"inputs\[1\]: expected a number"),
        ([1, 1.0, 5, {}], r"inputs\[2\]: expected a string"),
        ([1, 1.0, "", {"k": []}], "map key 'k' is not an integer"),
        ([1, 1.0, "", {"1": [2]}], "expected true or false"),
        ([1], "takes 4 job input"),
    ],
)
def test_bad_inputs_are_refused(inputs: list[Any], message: str) -> None:
    with pytest.raises(JobDefinitionError, match=message):
        job_from_json({"graph": GRAPH, "inputs": inputs})


def test_bad_documents_are_refused() -> None:
    with pytest.raises(JobDefinitionError, match="is an object"):
        job_from_json([])
    with pytest.raises(JobDefinitionError, match="unknown key"):
        job_from_json({"graph": GRAPH, "inputs": [], "priority": 1})
    with pytest.raises(JobDefinitionError, match="missing field"):
        job_from_json({"graph": {"schema_version": "0.1.0"}, "inputs": []})
    with pytest.raises(JobDefinitionError, match="at least one task"):
        job_from_json({"graph": {**GRAPH, "tasks": []}, "inputs": []})


def test_outputs_become_json() -> None:
    assert payload_to_json(ormsgpack.packb([b"text", b"\xff", math.inf])) == [
        "text",
        {"base64": "/w=="},
        "inf",
    ]
    assert payload_to_json(ormsgpack.packb({1: 2.5}, option=ormsgpack.OPT_NON_STR_KEYS)) == {
        "1": 2.5
    }
