"""Work split across processes or machines: shard `i` of `n` takes every n-th unit (chunk of texts, layer, ...)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"--shard must be i/n with 0 <= i < n, got {self.index}/{self.count}")

    def owns(self, unit: int) -> bool:
        """Whether unit number `unit` belongs to this shard (round robin)."""
        return unit % self.count == self.index

    def pick(self, items: Sequence[T]) -> list[T]:
        """This shard's items of a sequence (round robin)."""
        return [item for i, item in enumerate(items) if self.owns(i)]


def parse_shard(text: str) -> Shard:
    """`"i/n"` as a Shard, with an error naming the option when it is malformed."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    return Shard(index, count)
