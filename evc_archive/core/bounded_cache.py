"""A cache bounded by bytes, least recently used out: what keeps the encoder's and rate control's
memory flat however many settings they try (source LPIPS features, decoded and generated frames)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Hashable

import torch


def tensors_bytes(tensors: tuple[torch.Tensor, ...]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class BoundedCache:
    """key -> tuple of tensors, at most `limit` bytes in all. A value larger than the limit is
    not kept (get then misses, and the caller recomputes)."""

    def __init__(self, limit: int):
        self.limit, self.size = limit, 0
        self._values: OrderedDict[Hashable, tuple[torch.Tensor, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: Hashable) -> tuple[torch.Tensor, ...] | None:
        value = self._values.get(key)
        if value is not None:
            self._values.move_to_end(key)
        return value

    def put(self, key: Hashable, value: tuple[torch.Tensor, ...]) -> None:
        size = tensors_bytes(value)
        while self._values and self.size + size > self.limit:
            _, old = self._values.popitem(last=False)
            self.size -= tensors_bytes(old)
        if size <= self.limit:
            self._values[key] = value
            self.size += size
