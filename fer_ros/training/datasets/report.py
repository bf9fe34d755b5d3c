"""What a loader could not use: rows counted by reason, with a few examples of each."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Report:
    """Rows a loader could not use, counted by reason, with a few examples of each."""

    bad: Counter = field(default_factory=Counter)
    excluded: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def add_bad(self, reason: str, where: str = "") -> None:
        self.bad[reason] += 1
        if where:
            self.examples.setdefault(reason, []).append(where) if len(
                self.examples.get(reason, [])
            ) < 3 else None

    def add_excluded(self, reason: str, n: int = 1) -> None:
        self.excluded[reason] += n

    def merge(self, other: Report) -> None:
        self.bad.update(other.bad)
        self.excluded.update(other.excluded)
        for k, v in other.examples.items():
            self.examples.setdefault(k, []).extend(v[: 3 - len(self.examples.get(k, []))])

    def lines(self) -> list[str]:
        out = []
        for reason, n in sorted(self.bad.items()):
            ex = self.examples.get(reason)
            out.append(f"bad rows: {n} {reason}" + (f" (e.g. {', '.join(ex)})" if ex else ""))
        out += [f"excluded: {n} {reason}" for reason, n in sorted(self.excluded.items())]
        return out


def all_reports(splits: dict) -> Report:
    """One report over every split (loaders that share one report across splits count it once)."""
    total, seen = Report(), set()
    for ds in splits.values():
        if id(ds.report) not in seen:
            seen.add(id(ds.report))
            total.merge(ds.report)
    return total
