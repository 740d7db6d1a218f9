"""``map_exceptions``: what leaves the block, and what it is chained to."""

from __future__ import annotations

import pytest

from spider.core.exception_mapping import ExceptionMap, map_exceptions


class Foreign(Exception):
    """An error from a library, to be translated at the boundary."""


class ForeignTimeout(Foreign):
    """A more specific foreign error."""


class DomainError(Exception):
    """What the caller's domain raises."""


class DomainTimeout(DomainError):
    """A more specific domain error."""


def test_a_mapped_error_is_raised_as_its_translation_from_the_original() -> None:
    original = Foreign("refused")

    with (
        pytest.raises(DomainError, match="storage: refused") as raised,
        map_exceptions({Foreign: lambda error: DomainError(f"storage: {error}")}),
    ):
        raise original

    assert raised.value.__cause__ is original


def test_the_first_matching_entry_wins() -> None:
    mapping: ExceptionMap = {ForeignTimeout: DomainTimeout, Foreign: DomainError}

    with pytest.raises(DomainTimeout), map_exceptions(mapping):
        raise ForeignTimeout("slow")
    with pytest.raises(DomainError) as raised, map_exceptions(mapping):
        raise Foreign("down")
    assert type(raised.value) is DomainError


def test_an_unmapped_error_passes_through_untouched() -> None:
    original = KeyError("x")

    with pytest.raises(KeyError) as raised, map_exceptions({Foreign: DomainError}):
        raise original

    assert raised.value is original
    assert raised.value.__cause__ is None


def test_base_exceptions_are_never_mapped() -> None:
    with pytest.raises(KeyboardInterrupt), map_exceptions({Exception: DomainError}):
        raise KeyboardInterrupt


def test_a_block_that_succeeds_is_left_alone() -> None:
    with map_exceptions({Foreign: DomainError}):
        value = 1 + 1

    assert value == 2
