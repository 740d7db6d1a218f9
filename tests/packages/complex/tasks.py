"""The ``complex::*`` tasks."""

from __future__ import annotations

import attrs

from spider.tdl import task


@attrs.frozen
class Complex:
    """A complex number."""

    re: float
    im: float

    def __add__(self, other: Complex) -> Complex:
        return Complex(self.re + other.re, self.im + other.im)

    def __sub__(self, other: Complex) -> Complex:
        return Complex(self.re - other.re, self.im - other.im)

    def __mul__(self, other: Complex) -> Complex:
        return Complex(
            self.re * other.re - self.im * other.im, self.re * other.im + self.im * other.re
        )


@attrs.frozen
class ComplexVec:
    """A vector of complex numbers."""

    items: list[Complex]


class ComplexError(Exception):
    """The package's own error, like upstream's custom error."""


@task(name="complex::add")
def add(a: Complex, b: Complex) -> Complex:
    """``a + b``."""
    return a + b


@task(name="complex::sub")
def sub(a: Complex, b: Complex) -> Complex:
    """``a - b``."""
    return a - b


@task(name="complex::cross_product")
def cross_product(a: ComplexVec, b: ComplexVec) -> ComplexVec:
    """The cross product of two 3-vectors."""
    if len(a.items) != 3 or len(b.items) != 3:
        raise ComplexError(
            f"cross product needs two 3-vectors, got lengths {len(a.items)} and {len(b.items)}"
        )
    (a1, a2, a3), (b1, b2, b3) = a.items, b.items
    return ComplexVec([a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1])


@task(name="complex::dot_product")
def dot_product(a: ComplexVec, b: ComplexVec) -> Complex:
    """``sum(a[i] * b[i])`` (no conjugation, as upstream)."""
    if len(a.items) != len(b.items):
        raise ComplexError(f"dot product of vectors of lengths {len(a.items)} and {len(b.items)}")
    total = Complex(0.0, 0.0)
    for left, right in zip(a.items, b.items, strict=True):
        total = total + left * right
    return total


@task(name="complex::always_fail")
def always_fail() -> Complex:
    """Fail with the package's own error."""
    raise ComplexError("complex::always_fail: intentional failure")
