"""A minimal observer: the document announces, views subscribe (napari's model events).

The document lives on one thread (the GUI's), so an event is a list of callbacks called
in order; no queueing, no weak references (a view disconnects when it closes, or lives as
long as the document). A library (psygnal) would add threading and weak references this
document does not need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Event(Generic[T]):
    """Callbacks that receive one value each time the event is emitted."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[T], object]] = []

    def connect(self, callback: Callable[[T], object]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[[T], object]) -> None:
        self._callbacks.remove(callback)

    def emit(self, value: T) -> None:
        for callback in list(self._callbacks):
            callback(value)
