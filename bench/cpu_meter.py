"""What a benchmark's halves cost: CPU milliseconds per unit of work, by process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.common import cpu_delta

if TYPE_CHECKING:
    from bench.stack import BenchStack


class CpuMeter:
    """CPU milliseconds per unit of work (a step, an assignment), by process, over each half's rounds.

    Taken from before a round to after the stack has settled, so the work that readers do in the
    background for that round (projections, ledger) is counted with it.
    """

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        # Each half's rounds as (CPU seconds by process, units of work); the totals are their sums.
        self.rounds: dict[str, list[tuple[dict[str, float], int]]] = {}

    def snapshot(self) -> dict[str, float]:
        return self.stack.cpu()

    def add(self, half: str, before: dict[str, float], units: int) -> None:
        self.rounds.setdefault(half, []).append((cpu_delta(before, self.stack.cpu()), units))

    def per_unit_ms(self) -> dict[str, dict[str, float]]:
        out = {}
        for half, rounds in self.rounds.items():
            totals: dict[str, float] = {}
            for used_by, _ in rounds:
                for name, used in used_by.items():
                    totals[name] = totals.get(name, 0.0) + used
            out[half] = _ms_per_unit(totals, sum(units for _, units in rounds))
        return out

    def per_round_ms(self) -> dict[str, list[dict[str, float]]]:
        """The same per round: a half whose rounds slow down shows which process took the extra time."""
        return {half: [_ms_per_unit(*one) for one in rounds] for half, rounds in self.rounds.items()}


def _ms_per_unit(seconds: dict[str, float], units: int) -> dict[str, float]:
    n = max(1, units)
    row = {k: round(1000 * v / n, 2) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1]) if v > 0}
    return {**row, "total": round(1000 * sum(seconds.values()) / n, 2)}
