"""``segexplorer explain / ablate / models / layers`` end to end, checked against Captum."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, LayerAttribution, LayerGradCam

from segexplorer.cli import main
from segexplorer.engine.aggregation import Aggregation, make_wrapper
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.models import build_untrained, get_architecture, load_model
from segexplorer.export.bundle import class_file_stem


def captum_reference(model, image_path, size, target):
    prepared = preprocess(load_image(image_path), size)
    inp = prepared.tensor.clone()
    with torch.no_grad():
        out_max = torch.argmax(model.logits(inp), dim=1, keepdim=True)
    wrapper = make_wrapper(model.logits, Aggregation(), out_max)
    grad_inp = inp.clone().requires_grad_()
    gc = LayerGradCam(wrapper, model.layer()).attribute(grad_inp, target=target)
    up = LayerAttribution.interpolate(gc, inp.shape[2:])
    fa = FeatureAblation(wrapper).attribute(inp, feature_mask=out_max, target=target)
    return out_max[0, 0].numpy(), gc[0, 0].detach().numpy(), up[0, 0].detach().numpy(), \
        fa[0, 0].numpy()


def check_npz_against_captum(out_dir, model, image_path, size):
    report = json.loads((out_dir / "report.json").read_text())
    npz = np.load(out_dir / "attributions.npz")
    targets = [t["index"] for t in report["targets"]]
    assert targets == report["present_classes"]
    expected_keys = {"segmentation", "segment_ids", "ablation_table"}
    for c in targets:
        expected_keys |= {f"gradcam_{c}", f"gradcam_upsampled_{c}", f"ablation_{c}"}
    assert set(npz.files) == expected_keys
    assert npz["ablation_table"].shape == (len(report["segments"]), len(report["class_names"]))
    for c in targets[:2]:
        seg, gc, up, fa = captum_reference(model, image_path, size, c)
        np.testing.assert_array_equal(npz["segmentation"], seg)
        np.testing.assert_array_equal(npz["segment_ids"], seg)
        for ours, theirs in ((npz[f"gradcam_{c}"], gc), (npz[f"gradcam_upsampled_{c}"], up),
                             (npz[f"ablation_{c}"], fa)):
            scale = max(float(np.abs(theirs).max()), 1e-12)
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * scale)
        # the table row of each segment is what the map shows on that segment's pixels
        for row, seg_info in enumerate(report["segments"]):
            value = npz["ablation_table"][row, c]
            assert np.all(npz[f"ablation_{c}"][npz["segment_ids"] == seg_info["id"]] == value)
    for c in targets:
        name = class_file_stem("gradcam", c, report["class_names"][c])
        assert (out_dir / f"{name}.png").is_file()
        assert (out_dir / f"{name.replace('gradcam', 'ablation', 1)}.png").is_file()
    assert (out_dir / "segmentation.png").is_file()
    return report


def test_explain_untrained_matches_captum(tmp_path, motorcycle_path, capsys):
    out = tmp_path / "out"
    code = main(["explain", str(motorcycle_path), "--model", "fcn_resnet50", "--weights",
                 "untrained", "--device", "cpu", "--size", "64", "--out", str(out)])
    assert code == 0
    assert "untrained" in capsys.readouterr().out
    model = load_model("fcn_resnet50", "untrained", "cpu")
    report = check_npz_against_captum(out, model, motorcycle_path, 64)
    assert report["untrained"] is True
    assert report["working_size"] == [64, 94]
    assert report["gradcam"]["layer"] == "backbone.layer4.2.conv3"
    assert report["gradcam"]["activation_shape"] == [1, 2048, 8, 12]
    assert report["versions"]["captum"]
    # one forward pass for prediction and every Grad-CAM, one per segment for ablation
    assert report["forward_passes"] == 1 + len(report["segments"])


def test_explain_with_a_saved_state_dict(tmp_path, astronaut_path):
    arch = get_architecture("fcn_resnet50")
    torch.manual_seed(123)
    module = build_untrained(arch)
    with torch.no_grad():  # different from the untrained weights
        for p in module.parameters():
            p.mul_(1.1).add_(0.01 * torch.randn_like(p))
    state = {f"aux_classifier.{k}": v for k, v in {"0.weight": torch.zeros(3)}.items()}
    state.update(module.state_dict())  # torchvision's files carry aux_classifier.* too
    weights = tmp_path / "my weights é.pth"
    torch.save(state, weights)
    out = tmp_path / "out"
    code = main(["explain", str(astronaut_path), "--model", "fcn_resnet50", "--weights",
                 str(weights), "--device", "cpu", "--size", "48", "--out", str(out), "-q"])
    assert code == 0
    model = load_model("fcn_resnet50", str(weights), "cpu")
    report = check_npz_against_captum(out, model, astronaut_path, 48)
    assert report["weights"] == str(weights)
    assert report["untrained"] is False


def test_explain_one_target_by_name_and_methods(tmp_path, motorcycle_path):
    out = tmp_path / "o"
    model = load_model("lraspp_mobilenet_v3_large", "untrained", "cpu")
    from segexplorer.engine.session import Session

    pred = Session(model, preprocess(load_image(motorcycle_path), 64)).predict()
    name = pred.categories[pred.present_classes[0]]
    code = main(["explain", str(motorcycle_path), "--model", "lraspp_mobilenet_v3_large",
                 "--weights", "untrained", "--size", "64", "--target", name,
                 "--methods", "gradcam", "--upsample", "bilinear", "--out", str(out), "-q"])
    assert code == 0
    npz = np.load(out / "attributions.npz")
    c = pred.present_classes[0]
    assert set(npz.files) == {"segmentation", f"gradcam_{c}", f"gradcam_upsampled_{c}"}
    assert not list(out.glob(f"ablation_{c}*.png"))


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["explain", "missing.png"], "does not exist"),
        (["explain", "{text}"], "not an image"),
        (["explain", "{img}", "--model", "resnet9000"], "Unknown model"),
        (["explain", "{img}", "--weights", "{text}"], "could not be read"),
        (["explain", "{img}", "--target", "unicorn"], "Unknown class"),
        (["explain", "{img}", "--target", "99"], "out of range"),
        (["explain", "{img}", "--methods", "magic"], "Unknown method"),
        (["explain", "{img}", "--baseline", "purple-ish"], "Unknown baseline"),
        (["explain", "{img}", "--layer", "backbone.nope"], "does not exist"),
        (["explain", "{img}", "--device", "cuda:7"], "cuda"),
        (["explain", "{img}", "--size", "3"], "too small"),
        (["ablate", "{img}", "--at", "5000,5"], "outside"),
        (["ablate", "{img}", "--at", "five"], "X,Y"),
    ],
)
def test_errors_are_one_line_and_nonzero(tmp_path, motorcycle_path, capsys, args, fragment):
    text = tmp_path / "notes.png"
    text.write_text("hello, I am not a picture")
    filled = [a.format(img=motorcycle_path, text=text) for a in args]
    defaults = ["--weights", "untrained", "--model", "lraspp_mobilenet_v3_large", "--size",
                "32", "--device", "cpu", "--out", str(tmp_path / "out"), "-q"]
    # later options win in argparse, so the case's own options come last
    code = main(filled[:2] + defaults + filled[2:])
    err = capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("segexplorer: error:")
    assert fragment.lower() in lines[0].lower()
    assert "Traceback" not in err


def test_models_and_layers_lists(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "fcn_resnet101" in out and "lraspp_mobilenet_v3_large" in out
    assert "fcn_resnet101_coco-7ecb50ca.pth" in out
    assert main(["layers", "fcn_resnet50"]) == 0
    out = capsys.readouterr().out
    assert "backbone.layer4.2.conv3" in out and "(default)" in out


def test_console_entry_runs_as_module(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "segexplorer", "explain", "nope.jpg",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "segexplorer: error: Image 'nope.jpg' does not exist: " \
                                  "check the path."


def test_fast_mode_is_recorded_and_close(tmp_path, astronaut_path):
    common = [str(astronaut_path), "--model", "tiny", "--weights", "untrained", "--size", "40",
              "--methods", "ablation", "-q"]
    assert main(["explain", *common, "--out", str(tmp_path / "exact")]) == 0
    assert main(["explain", *common, "--fast", "--out", str(tmp_path / "fast")]) == 0
    exact = json.loads((tmp_path / "exact" / "report.json").read_text())
    fast = json.loads((tmp_path / "fast" / "report.json").read_text())
    assert (exact["precision"], fast["precision"]) == ("fp32", "bf16")
    for a, b in zip(exact["targets"], fast["targets"]):
        assert b["score"] == pytest.approx(a["score"], rel=0.05, abs=1e-3)


def test_explain_any_registered_method_writes_its_maps_and_costs(tmp_path, blocks_image):
    """--methods takes the registry's names: each method's maps for every target from
    shared passes, the raw layer map for layer methods, its passes and seconds."""
    from segexplorer.engine.attribution import compute
    from segexplorer.engine.methods import MethodOptions
    from segexplorer.engine.session import Session

    out = tmp_path / "out"
    code = main(["explain", str(blocks_image), "--model", "tiny", "--weights", "untrained",
                 "--device", "cpu", "--size", "40", "--methods", "shapley,occlusion,layer_ig",
                 "--n-steps", "3", "--window", "10", "--stride", "5", "--out", str(out),
                 "-q"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["methods"] == ["shapley", "occlusion", "layer_ig"]
    session = Session(load_model("tiny", "untrained", "cpu"),
                      preprocess(load_image(blocks_image), 40))
    options = MethodOptions(n_steps=3, window=10, stride=5)
    with np.load(out / "attributions.npz") as npz:
        for method in report["methods"]:
            expected = compute(session, method, None, options)
            cost = report["method_costs"][method]
            assert cost["forward_passes"] == expected.forward
            assert cost["settings"] == {k: v for k, v in expected.settings}
            for c in report["present_classes"]:
                np.testing.assert_array_equal(npz[f"{method}_{c}"], expected.maps[c])
                name = class_file_stem(method, c, report["class_names"][c])
                assert (out / f"{name}.png").is_file()
        assert {f"layer_ig_raw_{c}" for c in report["present_classes"]} <= set(npz.files)
        assert "gradcam_0" not in npz.files and "ablation_table" not in npz.files
    assert report["shapley"]["exact"] is True
    assert len(report["shapley"]["targets"]) == len(report["present_classes"])


@pytest.mark.parametrize("args, words", [
    (["--methods", "gradcam,saliency"], "Unknown method 'saliency'"),
    (["--methods", "ig", "--n-steps", "0"], "--n-steps 0"),
    (["--methods", "occlusion", "--window", "4", "--stride", "9"], "stride 9 is larger"),
])
def test_bad_method_options_fail_in_one_line_before_any_work(tmp_path, blocks_image, capfd,
                                                             args, words):
    out = tmp_path / "out"
    code = main(["explain", str(blocks_image), "--model", "tiny", "--weights", "untrained",
                 "--device", "cpu", "--out", str(out), *args])
    err = capfd.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and words in err
    assert not out.exists()


def test_evaluate_writes_curves_and_the_issues_json(tmp_path, blocks_image):
    """segexplorer evaluate: curves.png and evaluation.json shaped as docs/evaluation.md,
    the numbers those of engine.evaluation on the same model and image."""
    from segexplorer.engine.evaluation import evaluate
    from segexplorer.engine.evaluation_plan import EvaluationSettings
    from segexplorer.engine.methods import MethodOptions
    from segexplorer.engine.session import Session

    out = tmp_path / "eval"
    code = main(["evaluate", str(blocks_image), "--model", "tiny", "--weights", "untrained",
                 "--device", "cpu", "--size", "32", "--methods", "gradcam,ablation",
                 "--pixel-steps", "5", "--chance-runs", "3", "--mprt-steps", "2",
                 "--infidelity-samples", "3", "--sensitivity-samples", "2", "--out",
                 str(out), "-q"])
    assert code == 0
    assert (out / "curves.png").stat().st_size > 10_000
    data = json.loads((out / "evaluation.json").read_text())
    session = Session(load_model("tiny", "untrained", "cpu"),
                      preprocess(load_image(blocks_image), 32))
    expected = evaluate(session, ["gradcam", "ablation"], None, MethodOptions(),
                        EvaluationSettings(pixel_steps=5, chance_runs=3, mprt_steps=2,
                                           infidelity_samples=3, sensitivity_samples=2))
    assert list(data["targets"]) == [str(c) for c in expected.targets]
    for c in expected.targets:
        for m in ("gradcam", "ablation"):
            entry, result = data["targets"][str(c)][m], expected.result(m, c)
            for curve in ("deletion_segments", "insertion_segments", "deletion_pixels",
                          "insertion_pixels"):
                assert entry[curve]["auc"] == pytest.approx(result.curves[curve].auc)
                assert [p[1] for p in entry[curve]["points"]] == pytest.approx(
                    result.curves[curve].y.tolist())
                assert "mean" in entry["chance"][curve]
            assert entry["infidelity"] == pytest.approx(result.infidelity)
            assert [s["spearman"] for s in entry["mprt"]] == pytest.approx(
                [s.spearman for s in result.mprt], nan_ok=True)
    assert data["settings"]["pixel_steps"] == 5 and data["untrained"] is True
    assert set(data["class_names"]) == {str(c) for c in expected.targets}


def test_evaluate_refuses_bad_settings_in_one_line(tmp_path, blocks_image, capfd):
    out = tmp_path / "eval"
    code = main(["evaluate", str(blocks_image), "--model", "tiny", "--weights", "untrained",
                 "--pixel-steps", "0", "--out", str(out)])
    err = capfd.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and "--pixel-steps 0" in err
    assert not out.exists()


# ------------------------------------------------------------------ checks before torch
# (issue 26, item 12: a typo took 14-15 s to be told, because torch loaded first)

BLOCK_TORCH = """
import sys
sys.modules["torch"] = None  # 'import torch' now fails: nothing below may need it
from segexplorer.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_torch(*args, cwd=None, script=BLOCK_TORCH):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**__import__("os").environ, "PYTHONPATH": str(repo)}
    env.pop("SEGEXPLORER_DEBUG", None)
    return subprocess.run([sys.executable, "-c", script, *[str(a) for a in args]],
                          capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


@pytest.mark.parametrize("args, words", [
    (["explain", "{img}", "--methods", "gradcm"], "Unknown method 'gradcm'"),
    (["explain", "missing.png"], "Image 'missing.png' does not exist"),
    (["explain", "{img}", "--baseline", "purple"], "Unknown baseline 'purple'"),
    (["explain", "{img}", "--model", "resnet9000"], "Unknown model 'resnet9000'"),
    (["explain", "{img}", "--model", "nowhere.toml"], "does not exist"),
    (["explain", "{img}", "--size", "0"], "--size 0 is too small"),
    (["ablate", "{img}", "--at", "1,2", "--size", "8"], "--size 8 is too small"),
    (["evaluate", "{img}", "--methods", "gradcam,magic"], "Unknown method 'magic'"),
    (["batch", "{tmp}/no such folder", "--methods", "gradcam"], "does not exist"),
    (["batch", "{tmp}", "--methods", "ablatoin"], "Unknown method 'ablatoin'"),
    (["batch", "{tmp}", "--model", "fcn_resnet9"], "Unknown model 'fcn_resnet9'"),
    (["batch", "{tmp}", "--actors", "2"], "--engine ray"),
    (["layers", "resnet9000"], "Unknown model 'resnet9000'"),
])
def test_typos_are_refused_in_one_line_before_torch_is_imported(tmp_path, blocks_image,
                                                                 args, words):
    filled = [a.format(img=blocks_image, tmp=tmp_path) for a in args]
    extra = [] if filled[0] == "layers" else ["--out", tmp_path / "out"]
    proc = run_without_torch(*filled, *extra)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("segexplorer: error: ")
    assert words in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["batch", "--help"], ["explain", "--help"], ["--help"],
                                  ["--version"]])
def test_help_and_version_need_no_torch(args):
    proc = run_without_torch(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and ("usage:" in proc.stdout or "segexplorer 0." in proc.stdout)


def test_the_bundles_entry_answers_version_without_loading_torch():
    """The bundle's entry imports torch before anything (Qt's DLLs must not come first on
    Windows), but not for --version / --help, which need neither torch nor Qt."""
    script = ("import sys\nsys.modules['torch'] = None\nsys.argv[0] = 'segexplorer'\n"
              "from segexplorer._entry import main\nsys.exit(main())\n")
    proc = run_without_torch("--version", script=script)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "segexplorer 0.1.0\n", "")
    from segexplorer.frozen import needs_no_torch

    assert needs_no_torch(["batch", "--help"]) and needs_no_torch(["-h"])
    assert not needs_no_torch(["photo.png"]) and not needs_no_torch(["--frozen-self-check"])
    assert not needs_no_torch(["explain", "photo.png", "--out", "o"])


def test_size_zero_is_refused_like_any_size_below_16(tmp_path, blocks_image, capsys):
    """--size 0 silently became the default 640 while --size -5 was refused."""
    for size in ("0", "-5", "15"):
        code = main(["explain", str(blocks_image), "--model", "tiny", "--weights",
                     "untrained", "--size", size, "--out", str(tmp_path / "o"), "-q"])
        err = capsys.readouterr().err
        assert code == 1 and f"--size {size} is too small: use at least 16" in err
    assert not (tmp_path / "o").exists()


def test_upsample_has_help_text(capsys):
    """--upsample had none."""
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--upsample {nearest,bilinear} how the layer methods' maps" in text
