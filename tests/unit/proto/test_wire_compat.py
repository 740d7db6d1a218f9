"""betterproto and Google's protobuf runtime must agree on every message of Spider's protocol,
and of Spider-py's extension (``spider_py/status.proto``).

The Google stubs are generated from `protos/` by grpcio-tools at test time, so the check is
against the proto files themselves, not against our generated code.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import betterproto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spider.proto.common
import spider.proto.scheduler
import spider.proto.spider_py.status
import spider.proto.storage

ROOT = Path(__file__).resolve().parents[3]
PROTO_FILES = (
    "common/common.proto",
    "scheduler/scheduler.proto",
    "storage/storage.proto",
    "spider_py/status.proto",
)
BETTERPROTO_MODULES = {
    "common": spider.proto.common,
    "scheduler": spider.proto.scheduler,
    "storage": spider.proto.storage,
    "spider_py.status": spider.proto.spider_py.status,
}
GOOGLE_MODULES = {
    "common": "common.common_pb2",
    "scheduler": "scheduler.scheduler_pb2",
    "storage": "storage.storage_pb2",
    "spider_py.status": "spider_py.status_pb2",
}
U64 = st.integers(min_value=0, max_value=2**64 - 1)
U32 = st.integers(min_value=0, max_value=2**32 - 1)


def _message_classes() -> list[tuple[str, type[betterproto.Message]]]:
    found = []
    for package, module in BETTERPROTO_MODULES.items():
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, betterproto.Message)
                and value.__module__ == module.__name__
            ):
                found.append((f"{package}.{name}", value))
    return sorted(found, key=lambda item: item[0])


MESSAGES = _message_classes()


@pytest.fixture(scope="module")
def google_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    out = tmp_path_factory.mktemp("pb2")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--python_out={out}",
            *PROTO_FILES,
        ],
        cwd=ROOT / "protos",
        check=True,
    )
    # protoc's output imports `common.common_pb2` as a top-level package: import it from `out`
    # and take the names back out of sys.modules afterwards.
    sys.path.insert(0, str(out))
    try:
        modules = {
            package: importlib.import_module(module) for package, module in GOOGLE_MODULES.items()
        }
        yield modules
    finally:
        sys.path.remove(str(out))
        roots = {module.split(".")[0] for module in GOOGLE_MODULES.values()}
        for name in [n for n in sys.modules if n.split(".")[0] in roots]:
            del sys.modules[name]


def _fields(message_cls: type[betterproto.Message]) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(message_cls)  # type: ignore[arg-type]


def _field_strategy(message_cls: type[betterproto.Message], field: dataclasses.Field[Any]) -> Any:
    meta = betterproto.FieldMetadata.get(field)
    scalar: st.SearchStrategy[Any]
    if meta.proto_type == betterproto.TYPE_MESSAGE:
        scalar = st.deferred(lambda: _message_strategy(message_cls._cls_for(field)))
    elif meta.proto_type == betterproto.TYPE_ENUM:
        enum_cls: type[enum.IntEnum] = message_cls._cls_for(field)
        scalar = st.sampled_from(list(enum_cls))
    elif meta.proto_type == betterproto.TYPE_UINT64:
        scalar = U64
    elif meta.proto_type == betterproto.TYPE_UINT32:
        scalar = U32
    elif meta.proto_type == betterproto.TYPE_STRING:
        scalar = st.text(max_size=20)
    elif meta.proto_type == betterproto.TYPE_BYTES:
        scalar = st.binary(max_size=40)
    elif meta.proto_type == betterproto.TYPE_BOOL:
        scalar = st.booleans()
    elif meta.proto_type == betterproto.TYPE_DOUBLE:
        scalar = st.floats(allow_nan=False)
    else:  # pragma: no cover - a new field type in the protos needs a strategy here
        raise AssertionError(f"no strategy for {meta.proto_type} ({field.name})")
    if "List" in str(field.type):
        return st.lists(scalar, max_size=3)
    return scalar


def _message_strategy(message_cls: type[betterproto.Message]) -> st.SearchStrategy[Any]:
    fields = _fields(message_cls)
    groups: dict[str, list[dataclasses.Field[Any]]] = {}
    plain: dict[str, Any] = {}
    for field in fields:
        group = betterproto.FieldMetadata.get(field).group
        if group:
            groups.setdefault(group, []).append(field)
        else:
            plain[field.name] = st.one_of(st.none(), _field_strategy(message_cls, field))

    @st.composite
    def build(draw: st.DrawFn) -> betterproto.Message:
        kwargs = {name: value for name, s in plain.items() if (value := draw(s)) is not None}
        for members in groups.values():
            chosen = draw(st.one_of(st.none(), st.sampled_from(members)))
            if chosen is not None:
                kwargs[chosen.name] = draw(_field_strategy(message_cls, chosen))
        return message_cls(**kwargs)

    return build()


def test_every_proto_message_is_covered() -> None:
    names = {name for name, _ in MESSAGES}
    assert {
        "common.TaskId",
        "scheduler.NextTaskResponse",
        "storage.RegisterJobRequest",
        "spider_py.status.GetClusterStatusResponse",
    } <= names
    assert len(names) >= 45


@pytest.mark.parametrize(("name", "message_cls"), MESSAGES, ids=[name for name, _ in MESSAGES])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_betterproto_and_protobuf_agree(
    google_modules: dict[str, ModuleType],
    name: str,
    message_cls: type[betterproto.Message],
    data: st.DataObject,
) -> None:
    package, message_name = name.rsplit(".", 1)
    google_cls = getattr(google_modules[package], message_name)
    message = data.draw(_message_strategy(message_cls))
    encoded = bytes(message)

    parsed = google_cls.FromString(encoded)
    # A field that protobuf does not know by that number and wire type would survive as an
    # unknown field and hide a mismatch: drop those so the bytes differ instead.
    parsed.DiscardUnknownFields()
    reencoded = parsed.SerializeToString(deterministic=True)
    # Both runtimes write fields in number order and omit proto3 defaults, so the bytes match.
    assert reencoded == encoded
    assert message_cls().parse(reencoded) == message


@pytest.mark.parametrize(("name", "message_cls"), MESSAGES, ids=[name for name, _ in MESSAGES])
def test_field_names_numbers_and_types_match(
    google_modules: dict[str, ModuleType], name: str, message_cls: type[betterproto.Message]
) -> None:
    package, message_name = name.rsplit(".", 1)
    descriptor = getattr(google_modules[package], message_name).DESCRIPTOR
    google_fields = {
        field.name: (field.number, _GOOGLE_TYPE_NAMES[field.type]) for field in descriptor.fields
    }
    ours = {}
    for field in _fields(message_cls):
        meta = betterproto.FieldMetadata.get(field)
        # betterproto appends "_" to names that are Python keywords (`from`).
        ours[field.name.rstrip("_")] = (meta.number, meta.proto_type)
    assert ours == google_fields


_GOOGLE_TYPE_NAMES = {
    1: betterproto.TYPE_DOUBLE,
    8: betterproto.TYPE_BOOL,
    4: betterproto.TYPE_UINT64,
    13: betterproto.TYPE_UINT32,
    9: betterproto.TYPE_STRING,
    12: betterproto.TYPE_BYTES,
    11: betterproto.TYPE_MESSAGE,
    14: betterproto.TYPE_ENUM,
}
