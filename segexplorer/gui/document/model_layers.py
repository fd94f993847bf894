"""The loaded model's layers: their names, the default Grad-CAM layer, why Grad-CAM cannot
use one (one line, before any job), and the engine's audit of every layer (one forward
and one backward pass: a job the planner asks for while ``audit_wanted``, kept per
prediction)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import catalog
from .events import Event, Field, State
from .jobtable import Job, JobTable
from .keys import PredictKey
from .requests import AuditLayers
from .runner import JobContext
from .states import ModelState
from .store import ResultStore

if TYPE_CHECKING:
    from ...engine.layers import LayerInfo


class ModelLayers(State):
    """The loaded model's layers, for the layer field, the picker and the analysis."""

    name = "model_layers"
    audit_wanted: Field[PredictKey | None] = Field(None)

    def __init__(self, model: ModelState, store: ResultStore, jobs: JobTable) -> None:
        super().__init__()
        self.model, self.store = model, store
        self.audited: Event[list[LayerInfo]] = Event()
        self._names: tuple[object, list[tuple[str, str]]] | None = None
        jobs.register(AuditLayers, self._job, done=self._done)

    def default(self) -> str:
        """The layer Grad-CAM uses when none is chosen: the loaded model's, else the
        chosen architecture's."""
        model = self.model
        if model.loaded is not None and model.loaded_key == model.choice.key:
            return model.loaded.default_layer
        arch = catalog.architectures().get(model.architecture)
        return arch.default_layer if arch is not None else ""

    def names(self) -> list[tuple[str, str]]:
        """(dotted path, type) of every layer of the loaded model (listed once)."""
        loaded = self.model.loaded
        if loaded is None:
            return []
        if self._names is None or self._names[0] is not loaded:
            from ...engine.models import list_layers

            self._names = (loaded, list_layers(loaded.module))
        return self._names[1]

    def refusal(self, path: str) -> str | None:
        """Why Grad-CAM cannot use ``path`` on the loaded model (one line), or None: a
        layer that does not exist, or one the engine's audit refused."""
        loaded = self.model.loaded
        if loaded is None:
            return None
        from ...engine.layers import normalize_layer_path

        wanted = normalize_layer_path(path)
        if wanted not in {name for name, _kind in self.names()}:
            return (f"Layer '{path}' does not exist in {loaded.name}: choose one in the "
                    "layer picker (Layer ...).")
        for info in self.store.audit(self.store.predict_key) or ():
            if info.path == wanted and not info.usable:
                return info.reason + "."
        return None

    def audit(self) -> list[LayerInfo] | str | None:
        """What the engine says of every layer (its last call's shape, reuse,
        usability), if known; else it is asked for (``audited`` announces it) and None;
        a string says why it cannot be."""
        key = self.store.predict_key
        if self.store.session is None or key is None:
            return "open an image first"
        known = self.store.audit(key)
        if known is None:
            self.audit_wanted = key
        return known

    def _job(self, request: AuditLayers) -> Job:
        session = self.store.session
        assert session is not None

        def job(state: JobContext) -> list[Any]:
            from ...engine.layers import audit_layers

            return audit_layers(session.model.module, session.model.logits, session.input)

        return Job(job, "Examining the layers")

    def _done(self, request: AuditLayers, infos: list[LayerInfo]) -> None:
        self.store.put_audit(request.key, infos)
        if self.audit_wanted == request.key:
            self.audit_wanted = None
        if request.key == self.store.predict_key:
            self.audited.emit(infos)
