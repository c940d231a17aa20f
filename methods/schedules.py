"""When and how sparse: sparsity schedules, independent of any method."""

from __future__ import annotations

from dataclasses import dataclass


def polynomial_sparsity(
    step: int,
    final: float,
    begin: int,
    end: int,
    initial: float = 0.0,
    exponent: float = 3.0,
) -> float:
    """Zhu & Gupta (2017): s(t) = s_f + (s_i - s_f) * (1 - p)^exponent, p = clip((t - begin)/(end - begin), 0, 1)."""
    if end <= begin:
        raise ValueError(f"end ({end}) must be greater than begin ({begin})")
    p = min(max((step - begin) / (end - begin), 0.0), 1.0)
    return final + (initial - final) * (1.0 - p) ** exponent


@dataclass(frozen=True)
class PolynomialSchedule:
    """Masks are updated at begin, begin + frequency, ... and always at end, so the final target is reached.

    (The study's TF code skipped the update at `end` when it was off the frequency grid; we do not.)
    """

    begin_step: int
    end_step: int
    frequency: int
    initial: float = 0.0
    exponent: float = 3.0

    def sparsity(self, step: int, final: float) -> float:
        return polynomial_sparsity(step, final, self.begin_step, self.end_step, self.initial, self.exponent)

    def is_update_step(self, step: int) -> bool:
        if not self.begin_step <= step <= self.end_step:
            return False
        return (step - self.begin_step) % self.frequency == 0 or step == self.end_step
