"""The evaluation of explanations equals the libraries' definitions, computed directly.

* Captum's own ``captum.metrics.infidelity`` (normalize=True) and ``sensitivity_max``
  are called on the seed's wrapper with the target, the same perturbations (a closure
  handing Captum the evaluation's own seeded noise) and, for sensitivity, Captum's
  LayerGradCam as the explanation: the evaluation's shared computation equals them to
  1e-5.
* Quantus (PixelFlipping, MPRT) is not installed: it requires ``opencv-python``, which
  clashes with the ``opencv-python-headless`` pytorch-grad-cam brings and ships its own
  Qt libraries next to PySide6's. Its definitions are computed here directly instead, one
  image at a time with nothing shared: pixel flipping (pixels sorted by attribution,
  largest first, replaced by the baseline in equal steps, the target's output recorded)
  and the cascading randomisation (``reset_parameters`` of the layers with parameters,
  from the last in ``named_modules`` order, Spearman's correlation with the original).
  Where our definitions differ from Quantus's: the score is the seed's argmax-masked sum
  divided by its original value (Quantus records the raw output of a classifier), and the
  maps are recomputed after a few stages (geometrically spaced), not after every layer.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from captum.metrics import infidelity, sensitivity_max
from tiny_models import COLOUR

from segexplorer.engine.aggregation import Aggregation, make_wrapper
from segexplorer.engine.attribution import compute
from segexplorer.engine.evaluation import (
    evaluate,
    infidelity_noise,
    mprt_checkpoints,
    pixel_ranking,
    randomisable_layers,
    randomised_models,
    segment_ranking,
    sensitivity_noise,
    spearman,
    ssim,
    step_counts,
)
from segexplorer.engine.evaluation_plan import CURVES, EvaluationSettings, evaluation_cost
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.methods import ImageFacts, MethodOptions
from segexplorer.engine.models import load_model
from segexplorer.engine.segments import make_segments
from segexplorer.engine.session import Session

SETTINGS = EvaluationSettings(pixel_steps=6, chance_runs=4, mprt_steps=3, infidelity_samples=4,
                              sensitivity_samples=2)


@pytest.fixture(scope="module")
def session(coffee_path):
    return Session(load_model("tiny", "untrained", "cpu"), preprocess(load_image(coffee_path), 32))


@pytest.fixture(scope="module")
def evaluation(session):
    return evaluate(session, ["gradcam", "ablation", "activation"], None, MethodOptions(),
                    SETTINGS)


def wrapper(session: Session, model=None):
    return make_wrapper((model or session.model).logits, Aggregation(),
                        session.class_map_tensor)


def score(session: Session, image: torch.Tensor, c: int, model=None) -> float:
    with torch.no_grad():
        return float(wrapper(session, model)(image)[0, c])


def test_deletion_and_insertion_equal_pixel_flipping_computed_one_image_at_a_time(
        session, evaluation):
    """Quantus's PixelFlipping, written out: no image shared, nothing cached."""
    base = torch.zeros_like(session.input)  # the 'zero' baseline
    h, w = session.image.shape
    gradcam = compute(session, "gradcam", list(evaluation.targets))
    for c in evaluation.targets:
        original = score(session, session.input, c)
        order = np.argsort(-gradcam.maps[c].ravel(), kind="stable")
        result = evaluation.result("gradcam", c)
        for j, n in enumerate(step_counts(h * w, SETTINGS.pixel_steps)):
            removed = np.zeros(h * w, bool)
            removed[order[:n]] = True
            mask = torch.as_tensor(removed.reshape(1, 1, h, w))
            deleted = score(session, torch.where(mask, base, session.input), c)
            inserted = score(session, torch.where(mask, session.input, base), c)
            assert result.curves["deletion_pixels"].y[j] == pytest.approx(
                deleted / original, rel=1e-5, abs=1e-6)
            assert result.curves["insertion_pixels"].y[j] == pytest.approx(
                inserted / original, rel=1e-5, abs=1e-6)
        assert result.curves["deletion_pixels"].auc == pytest.approx(
            np.trapezoid(result.curves["deletion_pixels"].y,
                         np.linspace(0, 1, SETTINGS.pixel_steps + 1)))


def test_segment_curves_remove_segments_by_summed_attribution(session, evaluation):
    segments = make_segments(session.predict().class_map, "class")
    ablation = compute(session, "ablation", list(evaluation.targets))
    c = evaluation.targets[0]
    sums = [ablation.maps[c][segments.ids == s.id].sum() for s in segments.info]
    order = sorted(range(segments.count), key=lambda r: (-sums[r], r))
    assert list(segment_ranking(ablation.maps[c], segments)) == order
    original = score(session, session.input, c)
    curve = evaluation.result("ablation", c).curves["deletion_segments"]
    assert curve.x.tolist() == pytest.approx(np.linspace(0, 1, segments.count + 1).tolist())
    for k in range(segments.count + 1):
        gone = [segments.info[r].id for r in order[:k]]
        mask = torch.as_tensor(np.isin(segments.ids, gone)).view(1, 1, *segments.ids.shape)
        image = torch.where(mask, torch.zeros_like(session.input), session.input)
        assert curve.y[k] == pytest.approx(score(session, image, c) / original, rel=1e-5,
                                           abs=1e-6)


def test_ties_keep_raster_order():
    a = np.array([[1.0, 2.0, 1.0], [2.0, 0.0, 1.0]])
    assert pixel_ranking(a).tolist() == [1, 3, 0, 2, 5, 4]


def test_the_chance_band_is_shared_and_its_images_are_counted_once(session, evaluation):
    h, w = session.image.shape
    segments = make_segments(session.predict().class_map, "class")
    facts = ImageFacts(h, w, segments.count, len(evaluation.targets))
    bound = evaluation_cost(facts, evaluation.methods, MethodOptions(), SETTINGS)
    assert evaluation.images["curves"] <= bound.curves
    for c in evaluation.targets:
        band = evaluation.chance[c]["deletion_pixels"]
        assert band.aucs.shape == (SETTINGS.chance_runs,)
        assert band.mean[0] == pytest.approx(1.0) and band.std[0] == pytest.approx(0.0)
    # the activation is one map for every class: its rankings are shared, so adding it
    # to an evaluation adds the images of one ranking, not of one per class
    alone = evaluate(session, ["gradcam", "ablation"], None, MethodOptions(),
                     EvaluationSettings(pixel_steps=6, chance_runs=4, mprt=False,
                                        infidelity=False, sensitivity=False))
    extra = evaluation.images["curves"] - alone.images["curves"]
    assert 0 < extra <= 2 * SETTINGS.pixel_steps - 1 + 2 * segments.count


def test_each_stage_costs_at_most_what_evaluation_cost_says(session, evaluation):
    """The bound the window and the CLI show before a run holds stage by stage: a
    randomised model or a perturbed input is a session of its own, whose prediction is
    one more pass before the methods' maps."""
    h, w = session.image.shape
    segments = make_segments(session.predict().class_map, "class")
    facts = ImageFacts(h, w, segments.count, len(evaluation.targets))
    bound = evaluation_cost(facts, evaluation.methods, MethodOptions(), SETTINGS)
    for stage in ("maps", "curves", "mprt", "infidelity", "sensitivity"):
        assert evaluation.images.get(stage, 0) <= getattr(bound, stage), stage
    assert evaluation.images["sensitivity"] == bound.sensitivity  # the bound is exact there
    assert sum(evaluation.images.values()) <= bound.forward


def test_the_activation_takes_no_backward_pass(session):
    """evaluation_cost counts no backward pass for the activation (the layer's output):
    its own pass must not take a Grad-CAM gradient it does not need (it took one per
    computation: 7 more backward passes than the bound in bench_evaluation's run)."""
    backward = []
    handle = session.model.module.get_submodule("head").register_full_backward_hook(
        lambda *_args: backward.append(1))
    try:
        targets = list(session.predict().present_classes[:2])
        fresh = Session(session.model, session.image)
        activation = compute(fresh, "activation", targets)
        assert (len(backward), activation.backward) == (0, 0)
        assert activation.maps[targets[0]].shape == session.image.shape
        compute(fresh, "gradcam", targets)
        assert len(backward) == len(targets)  # the hook sees Grad-CAM's
    finally:
        handle.remove()


def test_infidelity_equals_captum_with_the_same_noise(session, evaluation):
    noise = infidelity_noise(tuple(session.input.shape), SETTINGS.infidelity_samples,
                             SETTINGS.infidelity_std, SETTINGS.seed)
    drawn = []

    def perturb(inputs):
        k = len(drawn)
        drawn.append(k)
        batch = noise[k:k + inputs.shape[0]]
        return batch, inputs - batch

    h, w = session.image.shape
    for method in ("gradcam", "ablation"):
        maps = compute(session, method, list(evaluation.targets))
        for c in evaluation.targets:
            drawn.clear()
            attribution = torch.as_tensor(maps.maps[c]).view(1, 1, h, w).expand(1, 3, h, w)
            theirs = infidelity(wrapper(session), perturb, session.input, attribution,
                                target=c, n_perturb_samples=SETTINGS.infidelity_samples,
                                max_examples_per_batch=1, normalize=True)
            ours = evaluation.result(method, c).infidelity
            assert ours == pytest.approx(float(theirs[0]), rel=1e-5, abs=1e-9)


def test_sensitivity_max_equals_captum_with_layer_gradcam_as_the_explanation(session,
                                                                              evaluation):
    noise = sensitivity_noise(tuple(session.input.shape), SETTINGS.sensitivity_samples,
                              SETTINGS.sensitivity_radius, SETTINGS.seed)
    lgc = LayerGradCam(wrapper(session), session.model.layer())

    def explanation(inputs, target):
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
        maps = lgc.attribute(inputs.clone().requires_grad_(True), target=target)
        return (LayerAttribution.interpolate(maps, inputs.shape[2:])[:, 0],)  # a tuple: Captum's sensitivity_max iterates it

    def perturb(inputs):
        return inputs + noise[:inputs.shape[0]]  # the N copies of the input, each its noise

    for c in evaluation.targets:
        theirs = sensitivity_max(explanation, session.input, perturb_func=perturb,
                                 n_perturb_samples=SETTINGS.sensitivity_samples, target=c)
        ours = evaluation.result("gradcam", c).sensitivity_max
        assert ours == pytest.approx(float(theirs[0]), rel=1e-5, abs=1e-7)


def test_randomisation_is_cascading_from_the_head_and_leaves_the_model_alone(
        session, evaluation):
    """Quantus's MPRT, written out for the first stage: the head re-initialised (seeded
    reset_parameters), Grad-CAM recomputed with Captum, Spearman with the original."""
    before = {k: v.clone() for k, v in session.model.module.state_dict().items()}
    layers = randomisable_layers(session.model.module)
    assert layers[0] == "head"  # the last layer first
    stage = evaluation.result("gradcam", evaluation.targets[0]).mprt
    assert [s.layer for s in stage][0] == "head" and stage[-1].layers_randomised == len(layers)
    module = copy.deepcopy(session.model.module)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SETTINGS.seed)
        module.get_submodule("head").reset_parameters()
    from segexplorer.engine.outputs import LogitsAdapter

    random_logits = LogitsAdapter(module)
    c = evaluation.targets[0]
    lgc_wrapper = make_wrapper(random_logits, Aggregation(), session.class_map_tensor)
    theirs = LayerGradCam(lgc_wrapper, module.get_submodule("body.2")).attribute(
        session.input.clone().requires_grad_(True), target=c)
    theirs = LayerAttribution.interpolate(theirs, session.input.shape[2:])[0, 0].detach()
    original = compute(session, "gradcam", [c]).maps[c]
    assert stage[0].spearman == pytest.approx(spearman(original, theirs.numpy()), abs=1e-6)
    for k, v in session.model.module.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_the_randomisation_holds_one_copy_of_the_model_at_a_time(session):
    """A list of every stage's snapshot held mprt_steps + 1 copies of the model at once
    (over a gigabyte for fcn_resnet101): the stages come one at a time instead."""
    import gc

    kind = type(session.model.module)

    def copies() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is kind)

    before = copies()
    held = [copies() - before for _stage in randomised_models(session.model, 3, 0)]
    assert len(held) == len(mprt_checkpoints(len(randomisable_layers(session.model.module)),
                                             3)) >= 2
    assert max(held) == 1


def test_the_randomised_weights_do_not_depend_on_the_callers_random_numbers(session):
    """The re-initialisation draws from its own seeded stream, whatever the caller draws
    between stages, and leaves the process's random stream as it was."""
    def weights(draw_between: bool) -> list[float]:
        out = []
        for _layer, _count, model in randomised_models(session.model, 3, 7):
            out.append(float(sum(p.double().sum() for p in model.module.parameters())))
            if draw_between:
                torch.rand(100)
        return out

    assert weights(False) == weights(True)
    torch.manual_seed(11)
    expected = torch.rand(5)
    torch.manual_seed(11)
    weights(False)
    assert torch.equal(torch.rand(5), expected)


def test_ssim_equals_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(30, 41)), rng.normal(size=(30, 41))
    b = a + 0.5 * b

    def unit(x):
        return (x - x.min()) / (x.max() - x.min())

    assert ssim(a, b) == pytest.approx(structural_similarity(unit(a), unit(b),
                                                             data_range=1.0), abs=1e-9)
    assert ssim(a, a) == pytest.approx(1.0)


def test_an_exact_attribution_falls_faster_than_chance_on_the_colour_model(tmp_path):
    """Red pixels are the aeroplane's: removing them first (the ablation map, exact for
    this model) takes its score down at once, a random order only linearly."""
    from PIL import Image

    arr = np.full((32, 32, 3), 200, np.uint8)
    arr[4:20, 6:22] = (230, 20, 20)
    path = tmp_path / "red.png"
    Image.fromarray(arr).save(path)
    session = Session(load_model(COLOUR, "untrained", "cpu"), preprocess(load_image(path), 32))
    result = evaluate(session, ["ablation", "occlusion"], [1],
                      MethodOptions(segments="component", window=4, stride=4),
                      EvaluationSettings(pixel_steps=16, chance_runs=8, mprt=False,
                                         infidelity=False, sensitivity=False))
    band = result.chance[1]
    for method in ("ablation", "occlusion"):
        deletion = result.result(method, 1).curves["deletion_pixels"]
        insertion = result.result(method, 1).curves["insertion_pixels"]
        assert deletion.auc < band["deletion_pixels"].auc_mean - 2 * band["deletion_pixels"].auc_std
        assert insertion.auc > band["insertion_pixels"].auc_mean + 2 * band[
            "insertion_pixels"].auc_std
        assert "beats chance clearly" in result.verdict(method, 1)
    assert result.best(1, "deletion_pixels") in ("ablation", "occlusion")


def test_the_report_has_the_issues_shape(evaluation):
    import json

    data = json.loads(json.dumps(evaluation.to_json()))
    c = str(evaluation.targets[0])
    entry = data["targets"][c]["gradcam"]
    for name in CURVES:
        assert set(entry[name]) == {"points", "auc"}
        assert entry[name]["points"][0][0] == 0.0 and entry[name]["points"][-1][0] == 1.0
        assert set(entry["chance"][name]) >= {"mean", "std", "auc_mean"}
    assert {"layer", "spearman", "ssim"} <= set(entry["mprt"][0])
    assert isinstance(entry["infidelity"], float) and isinstance(entry["sensitivity_max"],
                                                                 float)
    assert data["settings"]["pixel_steps"] == SETTINGS.pixel_steps
    assert data["targets"][c]["best"]["deletion_pixels"] in evaluation.methods
