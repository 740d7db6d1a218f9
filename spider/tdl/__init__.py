"""The task definition layer: write tasks as plain Python functions, load and run packages.

A TDL package is a directory ``<package_dir>/<name>/`` holding a Python package whose modules
decorate functions with ``@task``; ``package_dir`` may be several directories, searched in order.
``load_package`` imports it under a private name and
``TdlPackage.execute`` runs one task on Spider's wire bytes. See ``docs/tdl.md``.
"""

from spider.core.task_context import TaskContext
from spider.core.task_graph import TdlContext
from spider.tdl._codec import ValueCodec, job_outputs, value_codec
from spider.tdl._errors import (
    InvalidPackageName,
    PackageInitError,
    PackageNotFound,
    TaskExecutionError,
    TaskNotFound,
    TdlDefinitionError,
    TdlDeserializationError,
    TdlError,
    TdlSerializationError,
    TdlValueError,
)
from spider.tdl._package import (
    MAX_PACKAGE_NAME_LENGTH,
    TdlPackage,
    load_package,
    package_names,
    validate_package_name,
)
from spider.tdl._registry import definition_of, on_load, task
from spider.tdl._signature import TaskSignature
from spider.tdl._task import TaskDefinition
from spider.tdl._types import (
    UnsupportedTypeError,
    describe,
    double,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    struct_name,
)

__all__ = [
    "MAX_PACKAGE_NAME_LENGTH",
    "InvalidPackageName",
    "PackageInitError",
    "PackageNotFound",
    "TaskContext",
    "TaskDefinition",
    "TaskExecutionError",
    "TaskNotFound",
    "TaskSignature",
    "TdlContext",
    "TdlDefinitionError",
    "TdlDeserializationError",
    "TdlError",
    "TdlPackage",
    "TdlSerializationError",
    "TdlValueError",
    "UnsupportedTypeError",
    "ValueCodec",
    "definition_of",
    "describe",
    "double",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "job_outputs",
    "load_package",
    "on_load",
    "package_names",
    "struct_name",
    "task",
    "validate_package_name",
    "value_codec",
]
