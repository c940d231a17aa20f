"""A small 0/1 pattern (a layer's mask) as a short string in the results tables, and back. Torch-free."""

from __future__ import annotations

import numpy as np

LIMIT = 4096  # entries of a pattern the `layers` table keeps (larger layers: None)


def to_hex(pattern: np.ndarray) -> str | None:
    """The pattern's entries row-major as bits, packed most-significant first, in hex; None above LIMIT."""
    if pattern.size > LIMIT:
        return None
    return np.packbits(pattern.reshape(-1).astype(np.uint8) != 0).tobytes().hex()


def from_hex(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """`to_hex`'s string back as a bool array of `shape`."""
    count = int(np.prod(shape))
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))
    return bits[:count].astype(bool).reshape(shape)
