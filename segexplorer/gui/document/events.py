"""Evented state without Qt: typed fields that say what changed (napari's evented models,
glue's callback properties), and the one announcement a document makes per user action.

* :class:`Event`: callbacks called in order with one value. The document lives on one
  thread (the GUI's), so there is no queueing and no weak reference (a view disconnects
  when it closes, or lives as long as the document). A library (psygnal) would add
  threading and weak references this document does not need.
* :class:`State` and :class:`Field`: a concern's typed fields (``state.method``).
  Assigning a field, or :meth:`State.update` several at once, emits the state's
  ``changed`` once with a :class:`Change`: the state's name and the fields that changed.
  A widget bound to one field listens to that, and only that.
* :class:`Updates`: the topics (``"analysis.method"``, ``"results.sweep"``,
  ``"jobs.ablated"``) that changed during one user action or one job result, announced
  once at its end; each panel's view is computed again only when a topic it depends on
  is among them (:func:`depends_on`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, overload

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


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


@dataclass(frozen=True)
class Change:
    """What changed in one state: its name and the names of its fields that changed."""

    state: str
    fields: frozenset[str]

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(f"{self.state}.{name}" for name in self.fields)


class Field(Generic[T]):
    """A typed field of a :class:`State`; assigning it emits the state's ``changed``.

    ``identity``: compare by identity (large objects: images, models, entries), not by
    value.
    """

    def __init__(self, default: T, *, identity: bool = False) -> None:
        self.default = default
        self.identity = identity
        self.name = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Field[T]: ...

    @overload
    def __get__(self, obj: State, owner: type[Any]) -> T: ...

    def __get__(self, obj: State | None, owner: type[Any]) -> Field[T] | T:
        if obj is None:
            return self
        value: T = obj.__dict__.get(self.name, self.default)
        return value

    def __set__(self, obj: State, value: T) -> None:
        obj.update(**{self.name: value})

    def same(self, old: object, new: object) -> bool:
        if old is new:
            return True
        if self.identity:
            return False
        return bool(old == new)


_FIELDS: dict[type, dict[str, Field[Any]]] = {}  # each State class's fields, found once


class State:
    """One concern's fields and their ``changed`` event (see the module's notes)."""

    name: ClassVar[str] = "state"

    def __init__(self) -> None:
        self.changed: Event[Change] = Event()

    @classmethod
    def fields(cls) -> dict[str, Field[Any]]:
        found = _FIELDS.get(cls)
        if found is None:
            found = {}
            for klass in reversed(cls.__mro__):
                found.update({k: v for k, v in vars(klass).items() if isinstance(v, Field)})
            _FIELDS[cls] = found
        return found

    def update(self, **values: Any) -> frozenset[str]:
        """Set several fields at once: one ``changed`` with those that changed."""
        known = self.fields()
        unknown = set(values) - set(known)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        values = self._normalize(dict(values))
        changed = frozenset(name for name, value in values.items()
                            if not known[name].same(getattr(self, name), value))
        for name in changed:
            self.__dict__[name] = values[name]
        if changed:
            self.changed.emit(Change(self.name, changed))
        return changed

    def touch(self, *names: str) -> None:
        """Announce fields as changed (a list changed in place, or a value to show again)."""
        if names:
            self.changed.emit(Change(self.name, frozenset(names)))

    def _normalize(self, values: dict[str, Any]) -> dict[str, Any]:
        """The values to set, corrected (a state's own rules); the default keeps them."""
        return values


def depends_on(*topics: str) -> Callable[[F], F]:
    """Mark a view function with the topics it reads (``"analysis"``: any of its fields;
    ``"ablation.hovered"``: that one)."""
    def mark(fn: F) -> F:
        fn.topics = frozenset(topics)  # type: ignore[attr-defined]
        return fn

    return mark


def touches(topics: Iterable[str], wanted: Iterable[str]) -> bool:
    """Whether any changed topic is one of ``wanted`` or inside one."""
    wanted = tuple(wanted)
    return any(t == w or t.startswith(w + ".") for t in topics for w in wanted)


class Updates:
    """Collects the topics that change during one user action or job result, and
    announces them once when it ends (``announced``)."""

    def __init__(self) -> None:
        self.announced: Event[frozenset[str]] = Event()
        self.closed = False
        self._pending: set[str] = set()
        self._depth = 0

    def add(self, topics: Iterable[str]) -> None:
        self._pending.update(topics)
        if self._depth == 0:
            self._flush()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Everything inside is announced together, at the end."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._flush()

    def _flush(self) -> None:
        while self._pending and not self.closed:
            topics = frozenset(self._pending)
            self._pending.clear()
            self._depth += 1  # a view that changes a state announces after this round
            try:
                self.announced.emit(topics)
            finally:
                self._depth -= 1
        if self.closed:
            self._pending.clear()
