"""Bad weights files never crash, hang or run code.

Every file either loads as the state dict it holds or raises :class:`UserError` with one
line that names the file (or the model) and says what to do. Files are made in
``tmp_path``; the network is never used (``urlopen`` is replaced where it matters).
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import io
import os
import pickle
import re
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import segexplorer
from segexplorer.engine import models
from segexplorer.engine import weights as W
from segexplorer.engine.errors import Cancelled, UserError
from segexplorer.engine.models import Architecture, load_model, register_architecture
from segexplorer.engine.weights import download_weights, read_state_dict

TINY = "tiny_test_xyz"
REAL = "lraspp_mobilenet_v3_large"


class TinySeg(nn.Module):
    """A few hundred parameters with the torchvision segmentation interface."""

    def __init__(self, num_classes: int = 21) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1),
            nn.BatchNorm2d(6),
        )
        self.classifier = nn.Conv2d(6, num_classes, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.classifier(torch.relu(self.body(x)))}


class Evil:
    """Unpickling this would run ``os.system`` (if anything ever unpickled it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class EvilOpen:
    """Unpickling this would create a file through ``builtins.open``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


# --------------------------------------------------------------------------- fixtures


def _tiny_arch(**kwargs) -> Architecture:
    return Architecture(name=TINY, build=lambda n: TinySeg(n), default_layer="body.2",
                        categories=tuple(f"c{i}" for i in range(21)), **kwargs)


@pytest.fixture
def tiny():
    """The tiny architecture, registered for this test only."""
    register_architecture(_tiny_arch())
    yield models.ARCHITECTURES[TINY]
    models.ARCHITECTURES.pop(TINY, None)


def _trained_tiny(num_classes: int = 21, seed: int = 123) -> TinySeg:
    torch.manual_seed(seed)
    model = TinySeg(num_classes)
    with torch.no_grad():  # make the BatchNorm buffers matter too
        model.body[3].running_mean.uniform_(-0.5, 0.5)
        model.body[3].running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def real_files(tmp_path_factory):
    """An LR-ASPP state dict (21 classes) and one with 5 classes, saved once."""
    folder = tmp_path_factory.mktemp("real")
    torch.manual_seed(7)
    sd21 = models.ARCHITECTURES[REAL].build(21).state_dict()
    torch.save(sd21, folder / "lraspp21.pth")
    sd5 = models.ARCHITECTURES[REAL].build(5).state_dict()
    torch.save(sd5, folder / "lraspp5.pth")
    return SimpleNamespace(sd21=folder / "lraspp21.pth", sd5=folder / "lraspp5.pth")


def user_error(fn, *args, names=(), **kwargs) -> str:
    """``fn(*args)`` raises a one-line UserError mentioning each of ``names``."""
    with pytest.raises(UserError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert msg and "\n" not in msg and "\r" not in msg and "\x1b" not in msg, msg
    for name in names:
        assert str(name) in msg, (name, msg)
    return msg


def same_outputs(a: nn.Module, b: nn.Module, shape=(1, 3, 24, 20)) -> bool:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(a.eval()(x)["out"], b.eval()(x)["out"])


# --------------------------------------------------------------------------- files that load


def test_valid_state_dict_round_trips(tmp_path, tiny):
    source = _trained_tiny()
    path = tmp_path / "tiny weights.pth"
    torch.save(source.state_dict(), path)
    loaded = load_model(TINY, str(path), "cpu")
    assert loaded.weights == str(path) and not loaded.untrained
    assert not loaded.module.training
    assert not any(p.requires_grad for p in loaded.module.parameters())
    assert same_outputs(loaded.module, source)
    assert not same_outputs(load_model(TINY, "untrained", "cpu").module, source)


def test_real_architecture_round_trips(real_files):
    # Equal tensors, every one (a forward pass of the real model costs seconds here;
    # same-outputs is checked on the tiny model above).
    loaded = load_model(REAL, str(real_files.sd21), "cpu").module.state_dict()
    saved = torch.load(real_files.sd21, weights_only=True)
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert not torch.equal(loaded["classifier.low_classifier.weight"],
                           models.build_untrained(models.ARCHITECTURES[REAL])
                           .state_dict()["classifier.low_classifier.weight"])


@pytest.mark.parametrize("wrap", ["state_dict", "model_state_dict", "model"])
def test_wrapped_checkpoint_is_accepted(tmp_path, tiny, wrap):
    source = _trained_tiny()
    path = tmp_path / f"ckpt_{wrap}.pt"
    torch.save({wrap: source.state_dict(), "epoch": 12, "best_miou": 0.61,
                "optimizer": {"param_groups": [{"lr": 0.01}], "state": {}}}, path)
    assert same_outputs(load_model(TINY, str(path), "cpu").module, source)


def test_dataparallel_prefix_is_accepted(tmp_path, tiny):
    source = _trained_tiny()
    sd = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({"state_dict": sd}, tmp_path / "dp.pth")
    assert same_outputs(load_model(TINY, str(tmp_path / "dp.pth"), "cpu").module, source)


def test_aux_classifier_keys_are_accepted(tmp_path, tiny):
    source = _trained_tiny()
    sd = dict(source.state_dict())
    sd["aux_classifier.0.weight"] = torch.randn(4, 6, 3, 3)
    sd["aux_classifier.4.bias"] = torch.randn(21)
    torch.save(sd, tmp_path / "aux.pth")
    assert same_outputs(load_model(TINY, str(tmp_path / "aux.pth"), "cpu").module, source)


def test_legacy_serialisation_is_accepted(tmp_path, tiny):
    source = _trained_tiny()
    path = tmp_path / "legacy.pth"
    torch.save(source.state_dict(), path, _use_new_zipfile_serialization=False)
    assert same_outputs(load_model(TINY, str(path), "cpu").module, source)


def test_read_state_dict_takes_str_and_path(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "sd.pt")
    for source in (tmp_path / "sd.pt", str(tmp_path / "sd.pt")):
        assert torch.equal(read_state_dict(source)["w"], torch.ones(2))


# --------------------------------------------------------------------------- files that don't fit


def test_state_dict_of_another_architecture(tmp_path, tiny, real_files):
    torch.save(_trained_tiny().state_dict(), tmp_path / "tiny.pth")
    msg = user_error(load_model, REAL, str(tmp_path / "tiny.pth"), "cpu",
                     names=(REAL, "tiny.pth"))
    assert "--model" in msg
    user_error(load_model, TINY, str(real_files.sd21), "cpu", names=(TINY, "lraspp21.pth"))


def test_other_class_count_real_architecture_loads_with_generic_names(real_files):
    # a fine-tuned copy with 5 classes: the count comes from the file (issue 11)
    model = load_model(REAL, str(real_files.sd5), "cpu")
    assert model.categories == ("class 0", "class 1", "class 2", "class 3", "class 4")
    with torch.no_grad():
        out = model.logits(torch.zeros(1, 3, 64, 64))
    assert tuple(out.shape) == (1, 5, 64, 64)
    saved = torch.load(real_files.sd5, weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in model.module.state_dict().items())


def test_other_class_count_tiny_loads(tmp_path, tiny):
    source = _trained_tiny(num_classes=3)
    torch.save(source.state_dict(), tmp_path / "three.pth")
    model = load_model(TINY, str(tmp_path / "three.pth"), "cpu")
    assert model.num_classes == 3 and same_outputs(model.module, source)


def test_a_file_that_differs_beyond_the_class_count_is_refused(tmp_path, tiny):
    sd = _trained_tiny().state_dict()
    sd["body.0.weight"] = torch.zeros(5, 3, 3, 3)  # another width inside the network
    torch.save(sd, tmp_path / "wide.pth")
    msg = user_error(load_model, TINY, str(tmp_path / "wide.pth"), "cpu",
                     names=(TINY, "wide.pth"))
    assert "body.0.weight" in msg and "(5, 3, 3, 3)" in msg


def test_non_tensor_values(tmp_path, tiny):
    sd = {k: 1.5 for k in TinySeg().state_dict()}
    torch.save(sd, tmp_path / "floats.pth")
    user_error(load_model, TINY, str(tmp_path / "floats.pth"), "cpu", names=("floats.pth",))


# --------------------------------------------------------------------------- broken files


def test_truncated_file(tmp_path, real_files):
    data = real_files.sd21.read_bytes()
    for cut in (len(data) // 2, 100, 5):
        path = tmp_path / f"cut{cut}.pth"
        path.write_bytes(data[:cut])
        msg = user_error(read_state_dict, path, names=(path.name,))
        assert "again" in msg


def test_truncated_legacy_file(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save(_trained_tiny().state_dict(), path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    for cut in (len(data) // 2, 40, 1):
        (tmp_path / "short.pth").write_bytes(data[:cut])
        user_error(read_state_dict, tmp_path / "short.pth", names=("short.pth",))


def test_empty_file(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    msg = user_error(read_state_dict, tmp_path / "empty.pth", names=("empty.pth",))
    assert "empty" in msg


def test_directory(tmp_path):
    (tmp_path / "weights.pth").mkdir()
    msg = user_error(read_state_dict, tmp_path / "weights.pth", names=("weights.pth",))
    assert "folder" in msg


@pytest.mark.parametrize("kind", ["fifo", "device", "long-name"])
def test_odd_paths_do_not_hang(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe.pth"
        os.mkfifo(path)  # torch.load on it would block forever
    elif kind == "device":
        path = Path("/dev/zero")
        if not path.exists():
            pytest.skip("no /dev/zero here")
    else:
        path = tmp_path / ("w" * 300 + ".pth")
    user_error(read_state_dict, path, names=(path.name[:50],))


def test_missing_path(tmp_path, tiny):
    msg = user_error(load_model, TINY, str(tmp_path / "nope" / "gone.pth"), "cpu",
                     names=("gone.pth",))
    assert "does not exist" in msg


@pytest.mark.parametrize(
    "content",
    [b"hello, this is a text file\n", b"\x00" * 64, b"PK\x03\x04 not really a zip",
     b"\x93NUMPY fake", b"{\"weights\": [1, 2, 3]}"],
    ids=["text", "zeros", "fake-zip", "npy", "json"],
)
def test_not_a_pytorch_file(tmp_path, content):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    user_error(read_state_dict, path, names=("model.pth",))


def test_zip_that_is_not_a_checkpoint(tmp_path):
    with zipfile.ZipFile(tmp_path / "archive.pth", "w") as zf:
        zf.writestr("readme.txt", "hello")
    user_error(read_state_dict, tmp_path / "archive.pth", names=("archive.pth",))


@pytest.mark.parametrize(
    "obj,fragment",
    [(torch.zeros(3), "Tensor"), ([torch.zeros(3)], "list"), ({}, "dict"), (42, "int"),
     ({1: torch.zeros(1)}, "key 1"), ({"a": torch.zeros(1), 2: torch.ones(1)}, "key 2")],
    ids=["tensor", "list", "empty-dict", "int", "int-keys", "mixed-keys"],
)
def test_not_a_state_dict(tmp_path, obj, fragment):
    torch.save(obj, tmp_path / "odd.pth")
    msg = user_error(read_state_dict, tmp_path / "odd.pth", names=("odd.pth", fragment))
    assert "torch.save(model.state_dict(), path)" in msg


# --------------------------------------------------------------------------- files that run code


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow/torch on broken data
@pytest.mark.parametrize("payload", [Evil, EvilOpen], ids=["os.system", "builtins.open"])
@pytest.mark.parametrize("how", ["torch.save", "pickle-protocol-2", "pickle-protocol-5"])
def test_code_running_pickle_is_refused_unrun(tmp_path, tiny, payload, how):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pth"
    obj = {"body.0.weight": torch.zeros(1), "x": payload(marker)}
    if how == "torch.save":
        torch.save(obj, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=int(how[-1]))
    assert not marker.exists()
    msg = user_error(read_state_dict, path, names=("evil.pth",))
    assert "torch.save(model.state_dict(), path)" in msg
    user_error(load_model, TINY, str(path), "cpu", names=("evil.pth",))
    assert not marker.exists()


@pytest.mark.parametrize("payload", [Evil, EvilOpen], ids=["os.system", "builtins.open"])
def test_the_payloads_really_run_code(tmp_path, payload):
    """Sanity check of the fixtures: plain pickle.loads does run them."""
    marker = tmp_path / "MARKER"
    result = pickle.loads(pickle.dumps(payload(marker)))  # noqa: S301 - the point of the test
    if hasattr(result, "close"):
        result.close()
    assert marker.exists()


def test_code_running_pickle_is_named(tmp_path):
    torch.save({"x": Evil(tmp_path / "MARKER")}, tmp_path / "evil.pth")
    msg = user_error(read_state_dict, tmp_path / "evil.pth")
    assert "run code" in msg and "system" in msg
    assert not (tmp_path / "MARKER").exists()


def test_checkpoint_with_numpy_metadata_is_refused_politely(tmp_path):
    np = pytest.importorskip("numpy")
    torch.save({"state_dict": _trained_tiny().state_dict(), "best_miou": np.float64(0.6)},
               tmp_path / "np_meta.pth")
    msg = user_error(read_state_dict, tmp_path / "np_meta.pth",
                     names=("np_meta.pth", "numpy", "torch.save(model.state_dict(), path)"))
    assert "Do not trust" not in msg


def test_whole_pickled_model_is_refused(tmp_path, real_files):
    model = models.ARCHITECTURES[REAL].build(21)
    torch.save(model, tmp_path / "whole.pth")
    msg = user_error(load_model, REAL, str(tmp_path / "whole.pth"), "cpu",
                     names=("whole.pth", "torch.save(model.state_dict(), path)"))
    assert "whole model" in msg and "LRASPP" in msg


def test_whole_pickled_custom_model_is_refused(tmp_path, tiny):
    torch.save(_trained_tiny(), tmp_path / "whole_tiny.pth")
    msg = user_error(load_model, TINY, str(tmp_path / "whole_tiny.pth"), "cpu",
                     names=("whole_tiny.pth", "torch.save(model.state_dict(), path)"))
    assert "TinySeg" in msg


_UNPICKLERS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load",
               "dill.load", "dill.loads", "joblib.load", "cloudpickle.load", "torch.jit.load",
               "torch.package.PackageImporter", "marshal.loads", "shelve.open"}


def _unsafe_loads(root: Path) -> tuple[list[str], int]:
    """(problems, number of torch.load calls) in the .py files under ``root``."""
    problems, calls = [], 0
    for py in sorted(root.rglob("*.py")):
        text = py.read_text(encoding="utf-8")
        if not re.search(r"load|Unpickler|PackageImporter|shelve", text):
            continue
        try:
            tree = ast.parse(text)
        except SyntaxError:  # a file mid-edit by someone else: fall back to text
            for m in re.finditer(r"torch\.(?:serialization\.)?load\s*\(", text):
                calls += 1
                if not re.search(r"weights_only\s*=\s*True", text[m.end(): m.end() + 300]):
                    problems.append(f"{py}: torch.load without weights_only=True")
            continue
        bare_load = re.search(r"from torch(\.serialization)? import [^\n]*\bload\b", text)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = ast.unparse(node.func)
            where = f"{py.relative_to(root)}:{node.lineno}: {ast.unparse(node)[:80]}"
            kw = {k.arg: k.value for k in node.keywords}
            if func in ("torch.load", "torch.serialization.load") or (func == "load"
                                                                     and bare_load):
                calls += 1
                flag = kw.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(f"{where} must pass weights_only=True")
            elif func in _UNPICKLERS:
                problems.append(f"{where} can run code from the file")
            elif func in ("np.load", "numpy.load") and not (
                    isinstance(kw.get("allow_pickle", ast.Constant(False)), ast.Constant)
                    and kw.get("allow_pickle", ast.Constant(False)).value is False):
                problems.append(f"{where} unpickles (allow_pickle)")
    return problems, calls


def test_torch_load_is_weights_only_everywhere():
    """Every torch.load in segexplorer/ passes weights_only=True; nothing else unpickles."""
    problems, calls = _unsafe_loads(Path(segexplorer.__file__).parent)
    assert problems == []
    assert calls >= 1  # read_state_dict itself


def test_the_source_scan_would_notice(tmp_path):
    (tmp_path / "bad.py").write_text(
        "import torch, pickle\nimport numpy as np\n"
        "a = torch.load('x')\n"
        "b = torch.load('x', weights_only=False)\n"
        "c = torch.load('x', **opts)\n"
        "d = pickle.loads(data)\n"
        "e = np.load('x.npz', allow_pickle=True)\n"
        "f = torch.load('x', map_location='cpu', weights_only=True)\n"
        "g = np.load('x.npz')\n",
        encoding="utf-8")
    (tmp_path / "half.py").write_text("x = torch.load(path,\n  map_location='cpu'\n(",
                                      encoding="utf-8")
    problems, calls = _unsafe_loads(tmp_path)
    assert calls == 5 and len(problems) == 6, problems


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow/torch on broken data
@settings(max_examples=int(os.environ.get("SEGEXPLORER_FUZZ_EXAMPLES", "60")),
          deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_files_never_escape(tmp_path, data):
    """Random damage to a small checkpoint: it loads as a dict or is a UserError."""
    buf = io.BytesIO()
    legacy = data.draw(st.booleans())
    torch.save({"w": torch.arange(6.0), "b": torch.ones(2)}, buf,
               _use_new_zipfile_serialization=not legacy)
    raw = bytearray(buf.getvalue())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(1, len(raw)))]
    for _ in range(data.draw(st.integers(0, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "fuzz.pth"
    path.write_bytes(bytes(raw))
    try:
        obj = read_state_dict(path)
    except UserError as exc:
        assert "\n" not in str(exc) and "fuzz.pth" in str(exc)
    else:
        assert isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj)


# --------------------------------------------------------------------------- default weights


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def no_network(monkeypatch):
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


def test_default_weights_offline_names_file_and_cache(torch_home, no_network):
    arch = models.ARCHITECTURES[REAL]
    cache = torch_home / "hub" / "checkpoints"
    assert W.cache_dir() == cache
    msg = user_error(load_model, REAL, "default", "cpu", allow_download=False,
                     names=(arch.weights_filename, str(cache / arch.weights_filename)))
    assert "--weights" in msg
    assert no_network == []  # downloads off means no connection attempted


def test_download_unreachable_leaves_nothing(torch_home, no_network):
    arch = models.ARCHITECTURES[REAL]
    msg = user_error(download_weights, arch, names=(arch.weights_filename,))
    assert "no connection" in msg
    assert no_network == [arch.weights_url]
    cache = W.cache_dir()
    assert not cache.exists() or list(cache.iterdir()) == []
    # and through load_model with downloads allowed
    user_error(load_model, REAL, "default", "cpu", names=(arch.weights_filename,))
    assert not cache.exists() or list(cache.iterdir()) == []


class FakeResponse:
    """Just enough of an HTTP response: serves ``data``, optionally fails midway."""

    def __init__(self, data: bytes, fail_after: int | None = None, exc=None, length=None):
        self._buf = io.BytesIO(data)
        self._fail_after, self._exc = fail_after, exc
        self.headers = {"Content-Length": str(len(data) if length is None else length)}

    def read(self, n: int = -1) -> bytes:
        if self._fail_after is not None and self._buf.tell() >= self._fail_after:
            raise self._exc
        n = n if self._fail_after is None else min(n, self._fail_after - self._buf.tell())
        return self._buf.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _hashed_arch(data: bytes, **kwargs) -> Architecture:
    """The tiny architecture with downloadable 'default' weights named like torchvision's."""
    digest = hashlib.sha256(data).hexdigest()[:8]
    enum = SimpleNamespace(url=f"https://example.invalid/w/tiny_test_xyz-{digest}.pth",
                           meta={})
    return _tiny_arch(weights_enum=enum, **kwargs)


@pytest.mark.parametrize(
    "exc",
    [ConnectionResetError(104, "Connection reset by peer"), TimeoutError("timed out"),
     __import__("http.client").client.IncompleteRead(b"x" * 10, 100)],
    ids=["reset", "timeout", "incomplete"],
)
def test_interrupted_download_leaves_nothing(torch_home, monkeypatch, exc):
    data = b"\x00" * 3_000_000
    arch = models.ARCHITECTURES[REAL]
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda *a, **k: FakeResponse(data, fail_after=1 << 20, exc=exc))
    user_error(download_weights, arch, names=(arch.weights_filename,))
    assert list(W.cache_dir().iterdir()) == []


def test_short_or_corrupt_download_leaves_nothing(torch_home, monkeypatch):
    arch = models.ARCHITECTURES[REAL]
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: FakeResponse(b"junk" * 100))
    msg = user_error(download_weights, arch, names=(arch.weights_filename,))
    assert "hash" in msg
    assert list(W.cache_dir().iterdir()) == []
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda *a, **k: FakeResponse(b"junk", length=1000))
    user_error(download_weights, arch, names=(arch.weights_filename,))
    assert list(W.cache_dir().iterdir()) == []


def test_cancelled_download_leaves_nothing(torch_home, monkeypatch):
    arch = models.ARCHITECTURES[REAL]
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda *a, **k: FakeResponse(b"\x01" * (3 << 20)))

    class CancelAfterFirstChunk:
        def __init__(self):
            self.reports = []

        def set_progress(self, done, total, message=""):
            self.reports.append((done, total))

        def is_cancelled(self):
            return bool(self.reports)

    state = CancelAfterFirstChunk()
    with pytest.raises(Cancelled):
        download_weights(arch, state=state)
    assert state.reports == [(1 << 20, 3 << 20)]
    assert list(W.cache_dir().iterdir()) == []


def test_unwritable_cache_is_a_user_error(tmp_path, monkeypatch, no_network):
    blocker = tmp_path / "not a folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("TORCH_HOME", str(blocker))
    arch = models.ARCHITECTURES[REAL]
    msg = user_error(download_weights, arch, names=(arch.weights_filename, "TORCH_HOME"))
    assert "not a folder" in msg


def test_verified_download_is_cached_and_loads(torch_home, monkeypatch):
    source = _trained_tiny()
    buf = io.BytesIO()
    torch.save(source.state_dict(), buf)
    data = buf.getvalue()
    register_architecture(_hashed_arch(data))
    try:
        served = []

        def serve(url, *a, **k):
            served.append(url)
            return FakeResponse(data)

        monkeypatch.setattr(urllib.request, "urlopen", serve)
        loaded = load_model(TINY, "default", "cpu")
        assert same_outputs(loaded.module, source)
        cache = W.cache_dir()
        arch = models.ARCHITECTURES[TINY]
        assert [p.name for p in cache.iterdir()] == [arch.weights_filename]
        # second time: from the cache, downloads off, no connection
        loaded = load_model(TINY, "default", "cpu", allow_download=False)
        assert same_outputs(loaded.module, source) and len(served) == 1
        table = {row.model: row for row in models.weights_table()}
        assert table[TINY].cached and table[TINY].size_bytes == len(data)
    finally:
        models.ARCHITECTURES.pop(TINY, None)


def test_corrupt_cached_default_weights(torch_home, monkeypatch, no_network):
    arch = _hashed_arch(b"whatever")
    register_architecture(arch)
    try:
        cache = W.cache_dir()
        cache.mkdir(parents=True)
        (cache / arch.weights_filename).write_bytes(b"half a file")
        user_error(load_model, TINY, "default", "cpu", allow_download=False,
                   names=(arch.weights_filename,))
    finally:
        models.ARCHITECTURES.pop(TINY, None)
