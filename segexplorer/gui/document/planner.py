"""What must be computed: a pure function from the document's situation to job requests.

The document describes itself as a :class:`Situation` (plain values, no live objects) and
:func:`plan` answers with the requests (``requests``), in order, that the current choices
need and the store does not hold: the engine, the model, the image, the prediction, the
chosen method's result, the ablated input, and what the user asked for on purpose (an
ablation in ablate mode, the sweep that answers clicks, an evaluation, the layers'
audit). One request per channel: a second one waits for the first to finish. The job
table (``jobtable``) starts them; one that is already on its way, or that failed or was
cancelled with the same key, is skipped by the job book, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .choices import ABLATED, AnalysisChoice, ModelChoice
from .keys import (
    AblationKey,
    EvaluationKey,
    ImageKey,
    MethodKey,
    ModelKey,
    PredictKey,
    ResultKey,
    SweepKey,
)
from .requests import (
    Ablate,
    AuditLayers,
    ComputeAblatedInput,
    ComputeSweep,
    Evaluate,
    LoadEngine,
    LoadModel,
    OpenImage,
    Planned,
    Predict,
    Resize,
)
from .results import GRADCAM_PASS, ablated_key, gradcam_key, kind_of


@dataclass(frozen=True)
class Situation:
    """Everything :func:`plan` looks at."""

    engine_ready: bool
    model_choice: ModelChoice
    analysis: AnalysisChoice
    canvas_layer: str
    target: int | None
    ablate_mode: bool
    loaded_model: ModelKey | None
    source: int | None  # the opened image (its pixels are loaded), if any
    loaded_image: ImageKey | None
    predict_key: PredictKey | None  # the stored prediction's
    stored: frozenset[ResultKey] = frozenset()
    #: the chosen method is cheap enough to start on its own (its cost is shown, and
    #: Compute starts it, when it is not)
    method_auto: bool = True
    confirmed: frozenset[MethodKey] = frozenset()  # costly results the user asked for
    opening: int | None = None  # an image the user opened, not loaded yet
    ablation: AblationKey | None = None  # ablate mode's selection, to compute
    precompute: SweepKey | None = None  # the sweep asked for to answer clicks
    evaluation: EvaluationKey | None = None  # the evaluation asked for (Run)
    audit: PredictKey | None = None  # the layers' audit asked for (the layer picker)


def wanted_prediction(s: Situation) -> PredictKey | None:
    """The prediction the choices ask for, once its model and image are both loaded."""
    if s.loaded_model is None or s.loaded_image is None or s.source is None:
        return None
    choice = s.model_choice
    want = PredictKey(s.loaded_model, s.loaded_image, choice.precision)
    if want != PredictKey(choice.key, ImageKey(s.source, choice.size), choice.precision):
        return None  # the model or the image for these choices is still on its way
    return want


def plan(s: Situation) -> tuple[Planned, ...]:
    """The jobs the current choices need, in the order they should start."""
    choice = s.model_choice
    if not s.engine_ready:  # model work waits for torch; reading an image need not
        opening = (OpenImage(ImageKey(s.opening, choice.size)),) if s.opening is not None else ()
        return (LoadEngine(), *opening)
    requests: list[Planned] = []
    if choice.key != s.loaded_model:
        requests.append(LoadModel(choice.key))
    changing_model = s.loaded_model is not None and choice.key != s.loaded_model
    if s.opening is not None:
        requests.append(OpenImage(ImageKey(s.opening, choice.size)))
    elif (s.source is not None and ImageKey(s.source, choice.size) != s.loaded_image
          and not changing_model):
        # a new model's working size (a card's) waits for the model: if it is refused,
        # the image, its results and the size stay as they were
        requests.append(Resize(ImageKey(s.source, choice.size)))
    want = wanted_prediction(s)
    if want is not None and s.predict_key != want:
        with_gradcam = (gradcam_key(want, s.analysis)
                        if kind_of(s.analysis.method) is GRADCAM_PASS else None)
        requests.append(Predict(want, with_gradcam))
    predict = s.predict_key
    if predict is not None:
        requests.extend(_for_prediction(s, predict))
    channels: set[str] = set()
    one_per_channel = []
    for request in requests:  # the first on each channel; the next when it is done
        if request.channel not in channels:
            channels.add(request.channel)
            one_per_channel.append(request)
    return tuple(one_per_channel)


def _for_prediction(s: Situation, predict: PredictKey) -> list[Planned]:
    requests: list[Planned] = []
    analysis = s.analysis
    kind = kind_of(analysis.method)
    key = kind.key(predict, analysis, s.stored)
    if key not in s.stored and (not kind.costed or s.method_auto or key in s.confirmed):
        requests.append(kind.request(key))
    if s.canvas_layer == ABLATED and s.target is not None and not s.ablate_mode:
        akey = ablated_key(predict, analysis, s.target)
        if akey not in s.stored:
            requests.append(ComputeAblatedInput(akey))
    if s.ablate_mode and s.ablation is not None and s.ablation.predict == predict:
        requests.append(Ablate(s.ablation))
    if s.precompute is not None and s.precompute not in s.stored:
        requests.append(ComputeSweep(s.precompute))
    if s.evaluation is not None and s.evaluation not in s.stored:
        requests.append(Evaluate(s.evaluation))
    if s.audit == predict:
        requests.append(AuditLayers(predict))
    return requests
