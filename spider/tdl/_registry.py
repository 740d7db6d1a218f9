"""``@task`` and ``@on_load``: what importing a TDL package registers, and where.

Each package has one registry, keyed by the root module its code lives under. A package loaded
by ``load_package`` lives under a private root ``spider_tdl_packages.<token>`` opened before its
import, which carries the package's real name. Any other module (a package imported directly,
for example by a client building task graphs) belongs to the package named like its top-level
module.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Final, TypeVar, overload

import attrs

from spider.tdl._errors import TdlDefinitionError
from spider.tdl._signature import signature_of
from spider.tdl._task import TaskDefinition

PACKAGE_MODULE_PREFIX: Final = "spider_tdl_packages"
_DEFINITION_ATTRIBUTE: Final = "__spider_task__"

_F = TypeVar("_F", bound=Callable[..., Any])
_H = TypeVar("_H", bound=Callable[[], object])


@attrs.define(eq=False)
class PackageRegistry:
    """The tasks and load hooks one package has registered so far."""

    name: str
    tasks: dict[str, TaskDefinition] = attrs.Factory(dict)
    load_hooks: list[Callable[[], object]] = attrs.Factory(list)


_registries: dict[str, PackageRegistry] = {}


def root_module(module_name: str) -> str:
    """The module that owns the registry of ``module_name``'s package."""
    parts = module_name.split(".")
    if parts[0] == PACKAGE_MODULE_PREFIX and len(parts) > 1:
        return f"{parts[0]}.{parts[1]}"
    return parts[0]


def open_registry(root: str, package_name: str) -> PackageRegistry:
    """Start an empty registry for a package about to be imported under ``root``."""
    registry = PackageRegistry(package_name)
    _registries[root] = registry
    return registry


def close_registry(root: str) -> None:
    """Forget the registry of a package whose loading failed."""
    _registries.pop(root, None)


def _registry_of(module_name: str | None) -> PackageRegistry:
    # Functions made by exec() without a __name__ in their globals have no module.
    root = root_module(module_name or "__main__")
    registry = _registries.get(root)
    if registry is None:
        registry = _registries[root] = PackageRegistry(root)
    return registry


@overload
def task(function: _F, /) -> _F: ...
@overload
def task(*, name: str | None = None) -> Callable[[_F], _F]: ...
def task(function: _F | None = None, /, *, name: str | None = None) -> _F | Callable[[_F], _F]:
    """Register a function as a task of its module's TDL package (``@task`` or ``@task(name=...)``).

    The task is registered as ``name`` if given, else the function's ``__name__``. Its first
    parameter may be ``ctx: TaskContext``; every other parameter is an input and must be
    annotated with a value type; the return annotation gives the outputs (``None``: none; ``T``:
    one; ``tuple[A, B]``: several). Breaking a rule raises ``TdlDefinitionError`` now, at import.
    The function itself is returned unchanged and stays callable as plain Python.
    """
    if name is not None and (not isinstance(name, str) or not name):
        raise TdlDefinitionError(f"@task(name=...) needs a non-empty string, got {name!r}")

    def register(function: _F) -> _F:
        _register_task(function, name)
        return function

    if function is None:
        return register
    return register(function)


def _register_task(function: Callable[..., Any], name: str | None) -> None:
    _check_plain_function(function, "@task")
    task_name = name if name is not None else function.__name__
    registry = _registry_of(function.__module__)
    existing = registry.tasks.get(task_name)
    if existing is not None and not _same_function(existing.function, function):
        raise TdlDefinitionError(
            f"duplicate task name {task_name!r} in TDL package {registry.name!r}: "
            f"{_qualified(existing.function)} and {_qualified(function)}; "
            "give one of them another name with @task(name=...)"
        )
    definition = TaskDefinition(
        task_name, registry.name, function, signature_of(function, task_name)
    )
    registry.tasks[task_name] = definition
    setattr(function, _DEFINITION_ATTRIBUTE, definition)


def on_load(hook: _H) -> _H:
    """Register a hook run once, without arguments, when the executor first loads the package.

    If it raises, loading fails with ``PackageInitError`` and every task of the package fails
    with that error. Several hooks run in registration order.
    """
    _check_plain_function(hook, "@on_load")
    required = [
        parameter
        for parameter in inspect.signature(hook).parameters.values()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if required:
        raise TdlDefinitionError(
            f"@on_load hook {_qualified(hook)} must take no arguments, "
            f"it requires {', '.join(repr(parameter.name) for parameter in required)}"
        )
    hooks = _registry_of(hook.__module__).load_hooks
    # Re-importing a module (importlib.reload) replaces its hooks instead of doubling them.
    hooks[:] = [existing for existing in hooks if not _same_function(existing, hook)]
    hooks.append(hook)
    return hook


def definition_of(function: Callable[..., Any]) -> TaskDefinition:
    """The ``TaskDefinition`` a ``@task`` function was registered with."""
    definition = getattr(function, _DEFINITION_ATTRIBUTE, None)
    if not isinstance(definition, TaskDefinition):
        raise TdlDefinitionError(f"{function!r} is not a @task function")
    return definition


def _check_plain_function(function: Callable[..., Any], decorator: str) -> None:
    if not inspect.isfunction(function):
        raise TdlDefinitionError(f"{decorator} applies to plain functions, not {function!r}")
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        raise TdlDefinitionError(
            f"{decorator} {_qualified(function)} is `async def`: the executor calls tasks "
            "synchronously, make it a plain `def`"
        )
    if inspect.isgeneratorfunction(function):
        raise TdlDefinitionError(
            f"{decorator} {_qualified(function)} is a generator: return a value (e.g. a list) "
            "instead of yielding"
        )


def _same_function(first: Callable[..., Any], second: Callable[..., Any]) -> bool:
    return (first.__module__, first.__qualname__) == (second.__module__, second.__qualname__)


def _qualified(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"
