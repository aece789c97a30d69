"""A reference-counted cache of loaded models, shared by every player and judge that names one.

Loading the same weights twice would double memory and split the requests that one batcher could
have gathered, so local backends (transformers, vLLM, PairRM, reward models) keep one instance per
key and free it when the last user closes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedModels(Generic[K, V]):
    """key -> (instance, users). `acquire` builds on first use; `release` says when to free."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[K, tuple[V, int]] = {}

    def acquire(self, key: K, build: Callable[[K], V]) -> V:
        with self._lock:
            found = self._items.get(key)
            value = found[0] if found else build(key)
            self._items[key] = (value, (found[1] if found else 0) + 1)
        return value

    def release(self, key: K, value: V) -> bool:
        """Drop one user; True when it was the last (the caller then frees the weights)."""
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] is not value:
                return False
            if found[1] > 1:
                self._items[key] = (value, found[1] - 1)
                return False
            del self._items[key]
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._items))
