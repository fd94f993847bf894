"""What the document answers about the loaded model's layers: their names, why Grad-CAM
cannot use one (one line, before any job), and the engine's audit of every layer (one
forward and one backward pass, in a job, kept per prediction)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .runner import JobContext

if TYPE_CHECKING:
    from .document import Document


class LayerQuestions:
    """The loaded model's layers, for the layer field, the picker and the document."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc

    def refusal(self, path: str) -> str | None:
        """Why Grad-CAM cannot use ``path`` on the loaded model (one line), or None: a
        layer that does not exist, or one the engine's audit refused."""
        if self.doc.model is None:
            return None
        from ...engine.layers import normalize_layer_path

        wanted = normalize_layer_path(path)
        if wanted not in {name for name, _kind in self.names()}:
            return (f"Layer '{path}' does not exist in {self.doc.model.name}: choose one in the "
                    "layer picker (Layer ...).")
        for info in self.doc.store.audit(self.doc.predict_key) or ():
            if info.path == wanted and not info.usable:
                return info.reason + "."
        return None

    def request_audit(self, deliver: Callable[[list[Any]], None]) -> str | None:
        """What the engine says of every layer (the last call's shape, reuse, usability:
        one forward and one backward pass); ``deliver`` gets the ``LayerInfo`` list.
        Returns why it cannot, or None."""
        session, key = self.doc.session, self.doc.predict_key
        if session is None or key is None:
            return "open an image first"
        known = self.doc.store.audit(key)
        if known is not None:
            deliver(known)
            return None

        def job(state: JobContext) -> list[Any]:
            from ...engine.layers import audit_layers

            return audit_layers(session.model.module, session.model.logits, session.input)

        def done(value: object) -> None:
            infos = cast("list[Any]", value)
            self.doc.store.put_audit(key, infos)
            deliver(infos)

        self.doc.submit("shapes", ("audit", key), job, done, label="Examining the layers",
                    force=True)
        return None

    def names(self) -> list[tuple[str, str]]:
        """(dotted path, type) of every layer of the loaded model."""
        if self.doc.model is None:
            return []
        from ...engine.models import list_layers

        return list_layers(self.doc.model.module)
