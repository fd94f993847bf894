"""The comparison of two models (Model > Compare With...), without Qt: model B beside the
window's model A, on the same image.

B is chosen as A is (``comparison.model``, a :class:`SecondModel`: the same fields, so
the Model panel's choosers bind to it) and runs on A's device, at A's arithmetic, at its
own working size. Everything that runs a model is a request on the "compare" channel,
asked for by :func:`plan_comparison` from this state and A's results, in this order:

1. ``PrepareSecond``: B loaded (A's own model when B is the same one), the memory the
   two models take on A's device checked against A's memory budget
   (``engine.compare_run.pair_memory``: a pair the budget cannot hold is refused in one
   line, before B goes there), and B's
   prediction;
2. ``AblateBoth``: ablate mode's selection, a common segment or a drawn region, in both
   models (``engine.compare_run.ablate_both``);
3. ``CompareMaps``: the chosen method compared in both models, once A's own result for
   it is computed (``engine.compare_run.compare_sessions``, reusing A's results: a
   costly method runs on B only after the user let it run on A).

One channel runs one job at a time (a newer request waits for the one it replaces), so
B's session, which is not thread-safe, is never used by two jobs at once; each job also
holds A's model lock, as A's own jobs do. A result for other choices is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from .choices import ModelChoice, from_dict, to_dict
from .comparison_jobs import (
    PairComparison,
    PairEntry,
    Second,
    ablate_in_both,
    compare_in_both,
    explain_request,
    prepare_second,
    short_name,
)
from .events import Field, State, Updates
from .jobtable import Job, JobTable
from .keys import ComparisonKey, ModelKey, PairAblationKey, SecondKey, Selection
from .requests import AblateBoth, CompareMaps, PrepareSecond
from .results import GRADCAM_PASS, kind_of
from .states import AnalysisState, ImageState, ModelState, ViewState
from .store import ResultStore

if TYPE_CHECKING:  # the engine imports torch: loaded by the jobs
    from ...engine.compare import CommonSegments
    from ...engine.models import LoadedModel
    from .ablation import AblationState

CHANNEL = "compare"
DIFFERENCE, CHANGED = "difference", "changed"
THIRD_LABELS = {DIFFERENCE: "B - A", CHANGED: "Changed pixels"}
KEPT = 8  # comparisons kept per pair (back to a method: shown at once)
ABLATIONS_KEPT = 30


class SecondModel(ModelState):
    """Model B's choice: the same fields as A's (its device and arithmetic are A's)."""

    name = "comparison.model"


@dataclass(frozen=True)
class ComparisonSituation:
    """What :func:`plan_comparison` looks at."""

    active: bool
    pair: SecondKey | None  # B's prediction the choices ask for (None: A's is not there)
    prepared: SecondKey | None  # B's prediction held
    ablation: PairAblationKey | None  # the selection to ablate in both (not held)
    comparison: ComparisonKey | None  # the comparison to compute (not held)


def plan_comparison(s: ComparisonSituation) -> tuple[PrepareSecond | AblateBoth | CompareMaps,
                                                     ...]:
    """The comparison's next job (one channel: one at a time)."""
    if not s.active or s.pair is None:
        return ()
    if s.prepared != s.pair:
        return (PrepareSecond(s.pair),)
    if s.ablation is not None:
        return (AblateBoth(s.ablation),)
    if s.comparison is not None:
        return (CompareMaps(s.comparison),)
    return ()


class ComparisonState(State):
    """Model B beside A: whether the comparison is open, B's choice (``model``), what the
    third view shows, the class picked that only B knows, ablate mode's selection in both
    models, and the results (B's prediction, comparisons, ablations)."""

    name = "comparison"
    active = Field(False)
    third = Field(DIFFERENCE)  # what the third view shows: B - A or the changed pixels
    target: Field[str | None] = Field(None)  # a class only B knows (None: A's target)
    selection: Field[Selection | None] = Field(None)  # ablated in both models
    hovered: Field[int | None] = Field(None)  # the common segment under the cursor
    second: Field[Second | None] = Field(None, identity=True)  # B's prediction held
    refusal = Field("")  # why B is not there (a refused pair, a card that failed)

    def __init__(self, store: ResultStore, jobs: JobTable, model: ModelState,
                 image: ImageState, analysis: AnalysisState, view: ViewState,
                 ablation: AblationState, updates: Updates) -> None:
        super().__init__()
        self.model = SecondModel(ModelChoice())
        self.store, self.jobs, self.a_model, self.image = store, jobs, model, image
        self.analysis, self.view, self.ablation, self.updates = analysis, view, ablation, updates
        # A's target chosen anywhere else: the class only B knows is no longer shown
        view.changed.connect(lambda change: self.update(target=None)
                             if "target" in change.fields else None)
        self._held: tuple[ModelKey, LoadedModel] | None = None  # B, kept across images
        self._comparisons: dict[ComparisonKey, PairComparison] = {}
        self._entries: dict[PairAblationKey, PairEntry] = {}
        self._segments: dict[tuple[SecondKey, str], CommonSegments] = {}
        self._regions = 0
        self.drawings: dict[tuple[Any, ...], Any] = {}  # what the views drew (comparison_view)
        self._stopped: set[Any] = set()  # cancelled or failed: asked again by an edit
        jobs.register(PrepareSecond, self._prepare_job, done=self._on_prepared,
                      failed=self._on_refused, cancelled=self._on_stopped)
        jobs.register(AblateBoth, self._ablate_job, done=self._on_ablated,
                      failed=lambda r, *_: self._stop(r), cancelled=self._on_stopped)
        jobs.register(CompareMaps, self._compare_job, done=self._on_compared,
                      failed=lambda r, *_: self._stop(r), cancelled=self._on_stopped)

    # ======================================================================= open, close
    def open(self, choice: ModelChoice | None = None) -> None:
        """Compare with ``choice`` (the comparison's B; by default the B chosen before,
        or A's own model, whose weights the user then changes)."""
        with self.updates.batch():
            if choice is not None:
                self.model.set(choice)
            elif not self.active and self.second is None and self._held is None:
                self.model.set(self.a_model.choice)
            self.jobs.unblock(CHANNEL)
            self._stopped.clear()
            self.update(active=True, refusal="")

    def close(self) -> None:
        """Back to one model: B's jobs stop, B and every result of the pair are dropped."""
        with self.updates.batch():
            self.jobs.cancel(CHANNEL)
            self._held = None
            self._comparisons.clear()
            self._entries.clear()
            self._segments.clear()
            self.drawings.clear()
            self._stopped.clear()
            self.update(active=False, second=None, selection=None, hovered=None,
                        target=None, refusal="")
            self.touch("results")

    def saved(self) -> dict[str, Any] | None:
        """What a session file keeps of the comparison (None: not comparing)."""
        if not self.active:
            return None
        return {"model": to_dict(self.model.choice), "third": self.third}

    def restore(self, saved: dict[str, Any] | None) -> None:
        """A session file's comparison (None: the session compared nothing)."""
        if not saved:
            if self.active:
                self.close()
            return
        choice = from_dict(ModelChoice, saved.get("model", {}) or {},
                           self.a_model.choice)
        with self.updates.batch():
            self.third = str(saved.get("third", DIFFERENCE)) if saved.get(
                "third") in THIRD_LABELS else DIFFERENCE
            self.open(choice)

    # ======================================================================= questions
    def pair_key(self) -> SecondKey | None:
        """B's prediction the choices ask for (None: not comparing, or no A prediction)."""
        predict = self.store.predict_key
        if not self.active or predict is None:
            return None
        b = self.model
        return SecondKey(predict, ModelKey(b.architecture, b.weights, predict.model.device),
                         int(b.size))

    def held(self) -> Second | None:
        """B's prediction for the current choices, if it is there."""
        second = self.second
        return second if second is not None and second.key == self.pair_key() else None

    def comparison_key(self) -> ComparisonKey | None:
        second = self.held()
        if second is None:
            return None
        options = self.analysis.method_options()
        return ComparisonKey(second.key, self.analysis.method,
                             tuple((f.name, getattr(options, f.name)) for f in fields(options)))

    def result(self) -> PairComparison | None:
        """The comparison of the chosen method, if computed."""
        key = self.comparison_key()
        return self._comparisons.get(key) if key is not None else None

    def waits_for_a(self) -> bool:
        """The chosen method's comparison waits for A's own result (Compute, if costly)."""
        return self.held() is not None and not self.store.has_result()

    def ablation_key(self) -> PairAblationKey | None:
        second, selection = self.held(), self.selection
        if second is None or selection is None or not self.ablation.active:
            return None
        return PairAblationKey(second.key, selection)

    def shown(self) -> PairEntry | None:
        """The selection's ablation in both models, if computed."""
        key = self.ablation_key()
        return self._entries.get(key) if key is not None else None

    def is_running(self) -> bool:
        return self.jobs.is_running(CHANNEL)

    def was_stopped(self) -> bool:
        return self.jobs.is_blocked(CHANNEL)

    def can_reset(self) -> bool:
        return self.active and self.ablation.active and self.selection is not None

    def situation(self) -> ComparisonSituation:
        second = self.second
        ablation = self.ablation_key()
        if ablation is not None and (ablation in self._entries or ablation in self._stopped):
            ablation = None
        comparison = self.comparison_key()
        if comparison is not None and (comparison in self._comparisons
                                       or comparison in self._stopped
                                       or not self.store.has_result()):
            comparison = None
        return ComparisonSituation(self.active, self.pair_key(),
                                   second.key if second is not None else None,
                                   ablation, comparison)

    def schedule(self, force: bool = False) -> None:
        if force:
            self._stopped.clear()
        for request in plan_comparison(self.situation()):
            self.jobs.start(request, force)

    # ======================================================================= the grid
    def common_segments(self, kind: str | None = None) -> CommonSegments | None:
        """The common segments of ``kind`` (the analysis's by default) or a drawn region,
        on the original image's grid (made once per pair)."""
        second, pred = self.held(), self.store.prediction
        kind = kind or self.analysis.segments
        if second is None or pred is None:
            return None
        found = self._segments.get((second.key, kind))
        if found is None and not kind.startswith("region"):
            from ...engine.compare import common_segments

            width, height = second.session.image.original_size
            found = common_segments(pred, second.prediction, (height, width), kind)
            self._segments[(second.key, kind)] = found
        return found

    def segment_at(self, x: int, y: int, shape: tuple[int, int]) -> int | None:
        """The common segment under pixel (x, y) of a view of ``shape`` (rows, columns)."""
        common = self.common_segments()
        if common is None:
            return None
        h, w = common.ids.shape
        if not (0 <= x < shape[1] and 0 <= y < shape[0]):
            return None
        gx = min(w - 1, int((x + 0.5) * w / shape[1]))
        gy = min(h - 1, int((y + 0.5) * h / shape[0]))
        return common.at(gx, gy).id

    # ======================================================================= ablate mode
    def hover(self, x: int, y: int, shape: tuple[int, int]) -> None:
        """The cursor is over pixel (x, y) of a view of ``shape``: in ablate mode the common
        segment under it is outlined in every view."""
        self.hovered = self.segment_at(x, y, shape) if self.ablation.active else None

    def click(self, x: int, y: int, shape: tuple[int, int], add: bool = False) -> None:
        """A click in ablate mode: ablate the common segment under it in both models
        (``add``: toggle it in the selection)."""
        seg = self.segment_at(x, y, shape)
        if seg is None:
            return
        kind, current = self.analysis.segments, self.selection
        ids = {seg}
        if add and current is not None and current.kind == kind:
            ids = set(current.ids) ^ {seg}
        self.select(ids, kind)

    def draw_region(self, tool: str, points: list[tuple[float, float]],
                    shape: tuple[int, int], radius: float) -> None:
        """A brush stroke or a lasso drawn on a view of ``shape``: ablate that region in
        both models (each on its own working grid)."""
        second = self.held()
        if second is None or not points:
            return
        from ...engine.compare import region, to_grid
        from .ablation_entries import region_mask

        inside = region_mask(tool, points, shape, radius)
        if not inside.any():
            return
        width, height = second.session.image.original_size
        self._regions += 1
        kind = f"region-{self._regions}"
        mask = np.asarray(to_grid(inside, (height, width)), bool)
        self._segments[(second.key, kind)] = region(mask, kind)
        self.select((1,), kind)

    def select(self, ids: set[int] | tuple[int, ...], kind: str) -> None:
        if not ids:
            self.reset()
            return
        with self.updates.batch():
            if not self.ablation.active:
                self.ablation.set_active(True)
            selection = Selection(kind, self.analysis.baseline, tuple(sorted(ids)))
            second = self.held()
            if second is not None:  # asked again: computed again, even after a failure
                self._stopped.discard(PairAblationKey(second.key, selection))
            self.jobs.unblock(CHANNEL)
            if self.update(selection=selection) == frozenset():
                self.touch("selection")

    def reset(self) -> bool:
        """Back to the original image in both models."""
        if self.selection is None:
            return False
        self.selection = None
        return True

    def pick_at(self, x: int, y: int, shape: tuple[int, int], side: str) -> None:
        """A click outside ablate mode on pixel (x, y) of a view of ``shape``: the class
        ``side``'s model predicts there is shown in both views."""
        second = self.held()
        pred = self.store.prediction if side == "a" else (
            second.prediction if second is not None else None)
        if pred is None or not (0 <= x < shape[1] and 0 <= y < shape[0]):
            return
        h, w = pred.class_map.shape
        px = min(w - 1, int((x + 0.5) * w / shape[1]))
        py = min(h - 1, int((y + 0.5) * h / shape[0]))
        self.pick(pred.categories[int(pred.class_map[py, px])])

    def pick(self, name: str) -> None:
        """The table's row ``name`` was picked: it becomes A's target, or, for a class
        only B knows, the class both views show."""
        second = self.held()
        pair = second.matching.named(name) if second is not None else None
        if pair is None:
            return
        with self.updates.batch():
            if pair.a is not None:
                self.view.target = pair.a
                self.target = None
            else:
                self.target = pair.name

    # ======================================================================= the jobs
    def _prepare_job(self, request: PrepareSecond) -> Job:
        key = request.key
        a_model, prepared_a, pil = self.a_model.loaded, self.image.prepared, self.image.pil
        assert a_model is not None and prepared_a is not None and pil is not None
        shared = key.model == key.a.model
        held = a_model if shared else (self._held[1] if self._held is not None
                                       and self._held[0] == key.model else None)
        budget = self.a_model.budget(a_model.device)  # B runs where A does
        job = prepare_second(key, a_model, prepared_a, pil, held, key.a.precision, budget)
        what = "loading" if held is None else "predicting with"
        return Job(job, f"Comparing: {what} {short_name(key.model.architecture)}",
                   lock_key=key.a.model)

    def _on_prepared(self, request: PrepareSecond, second: Second) -> None:
        if not second.shared:
            self._held = (request.key.model, second.model)
        if request.key != self.pair_key():
            return  # other choices since: B is kept, its prediction is not
        with self.updates.batch():
            previous = self.second
            if previous is None or previous.key != second.key:
                self._entries.clear()
                self._comparisons.clear()
                self._segments.clear()
                self.drawings.clear()
                self.update(selection=None, hovered=None)
            self.update(second=second, refusal="")

    def _on_refused(self, request: PrepareSecond, message: str, details: str) -> bool:
        if request.key == self.pair_key():
            self.refusal = message
        return False  # the window says it too

    def _ablate_job(self, request: AblateBoth) -> Job:
        second, session_a = self.held(), self.store.session
        selection = request.key.selection
        common = self.common_segments(selection.kind)
        assert second is not None and session_a is not None and common is not None
        session_b = second.session

        job = ablate_in_both(request.key, session_a, session_b, common)
        return Job(job, "Ablating in both models", lock_key=request.key.pair.a.model)

    def _on_ablated(self, request: AblateBoth, entry: PairEntry) -> None:
        self._entries.pop(request.key, None)
        self._entries[request.key] = entry
        while len(self._entries) > ABLATIONS_KEPT:
            self._entries.pop(next(iter(self._entries)))
        self.touch("results")

    def _compare_job(self, request: CompareMaps) -> Job:
        from ...engine.compare_run import Computed

        second, session_a, store = self.held(), self.store.session, self.store
        assert second is not None and session_a is not None
        analysis, key = self.analysis.choice, request.key
        a_key = key.pair.a
        held_maps = store.method_for()
        gradcam = store.gradcam_for()
        if gradcam is None and kind_of(analysis.method) is GRADCAM_PASS:
            gradcam = store.result_for()  # the activation: any pass at the layer
        computed = Computed(
            gradcam=gradcam,
            sweep=store.sweep_for(analysis.segments, analysis.baseline, analysis.aggregation),
            maps={analysis.method: held_maps} if held_maps is not None else {})
        label = self.image.label
        request_a = explain_request(a_key.model, a_key.image.size, analysis,
                                    a_key.precision, label, analysis.layer or None)
        job = compare_in_both(key, analysis, computed, session_a, request_a, second, label)
        from .choices import METHOD_LABELS

        return Job(job, f"Comparing {METHOD_LABELS[analysis.method]} in both models",
                   lock_key=a_key.model)

    def _on_compared(self, request: CompareMaps, result: PairComparison) -> None:
        second = self.held()
        if second is None or request.key.pair != second.key:
            return  # another pair since
        self._comparisons.pop(request.key, None)
        self._comparisons[request.key] = result
        while len(self._comparisons) > KEPT:
            self._comparisons.pop(next(iter(self._comparisons)))
        self.touch("results")

    def _stop(self, request: AblateBoth | CompareMaps) -> bool:
        self._stopped.add(request.key)
        self.touch("results")
        return False  # a failure is still said

    def _on_stopped(self, request: PrepareSecond | AblateBoth | CompareMaps) -> None:
        if not isinstance(request, PrepareSecond):
            self._stopped.add(request.key)
        self.touch("results")

