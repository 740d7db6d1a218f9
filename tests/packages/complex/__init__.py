"""Upstream's ``complex`` example package, in Python: complex numbers as attrs structs.

``Complex`` travels as ``[re, im]`` and ``ComplexVec`` as ``[[[re, im], ...]]``, as rmp-serde
encodes the Rust structs.
"""

from __future__ import annotations

from .tasks import Complex, ComplexVec, add, always_fail, cross_product, dot_product, sub

__all__ = ["Complex", "ComplexVec", "add", "always_fail", "cross_product", "dot_product", "sub"]
