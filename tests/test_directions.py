"""Direction container, metadata, file formats (safetensors/npz/pt/gguf), compatibility checks. No model needed."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch

from entangle import __version__
from entangle.directions import (
    Direction,
    DirectionError,
    check_compatible,
    direction_meta,
    layer_from_llamacpp_index,
    llamacpp_index,
    load_direction,
    save_direction,
    sidecar_path,
)
from entangle.directions.direction import SIGN_CONVENTION
from entangle.models import ModelInfo

D = 16
N_LAYERS = 6
LAYERS = [0, 1, 2, 4, 6]  # includes the two layers llama.cpp cannot take (0, 1)


def make_info(**kw) -> ModelInfo:
    base = {"name": "toy-model", "source": "/models/toy", "n_layers": N_LAYERS, "d_model": D, "chat": True,
            "weights_hash": "abc123def4567890", "dtype": "float32", "device": "cpu", "bos_policy": "prepend",
            "padding_side": "left"}
    base.update(kw)
    return ModelInfo(**base)


def make_direction(layers=LAYERS, kind="moral", seed=0) -> Direction:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((len(layers), D)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v[-1] *= np.float32(3.7)  # one non-unit row, to check norms are recorded
    meta = direction_meta(
        make_info(), kind=kind, method="logistic", layers=layers, position="last_prompt_token",
        stimuli_sha256="f" * 64, cv_metrics={"accuracy": np.linspace(0.5, 0.9, len(layers)),
                                             "auc": [0.6] * len(layers)},
        templates=["t_plain", "t_chat"], extra={"seed": seed},
    )
    return Direction(vectors=v, layers=list(layers), kind=kind, method="logistic", meta=meta)


def assert_same(a: Direction, b: Direction) -> None:
    assert a.vectors.dtype == b.vectors.dtype == np.float32
    assert a.vectors.shape == b.vectors.shape
    assert a.vectors.tobytes() == b.vectors.tobytes()  # bitwise
    assert a.layers == b.layers
    assert a.kind == b.kind and a.method == b.method
    assert a.meta == b.meta


# ------------------------------------------------------------------------------------------- container


def test_meta_has_required_fields():
    d = make_direction()
    m = d.meta
    for key in ("model", "model_source", "weights_hash", "d_model", "n_layers", "hook_points", "layers", "position",
                "bos_policy", "padding_side", "kind", "method", "sign_convention", "norm", "stimuli_sha256",
                "cv_metrics", "templates", "entangle_version", "created", "format_version"):
        assert key in m, key
    assert m["hook_points"] == ["embed.hook_out", "blocks.0.hook_out", "blocks.1.hook_out", "blocks.3.hook_out",
                                "blocks.5.hook_out"]
    assert m["sign_convention"] == SIGN_CONVENTION
    assert m["entangle_version"] == __version__
    assert m["format_version"] == 1
    assert m["created"].endswith("+00:00")
    assert m["templates"] == ["t_plain", "t_chat"]
    assert m["seed"] == 0
    assert len(m["cv_metrics"]["accuracy"]) == len(LAYERS)
    np.testing.assert_allclose(m["norm"], [1, 1, 1, 1, 3.7], rtol=1e-6)
    json.dumps(m)  # serialisable


def test_at_and_to_torch():
    d = make_direction()
    assert d.d_model == D
    np.testing.assert_array_equal(d.at(4), d.vectors[3])
    t = d.to_torch(4, dtype=torch.float64)
    assert t.dtype == torch.float64 and t.shape == (D,)
    assert d.to_torch(2).dtype == torch.float32
    with pytest.raises(KeyError, match=r"available layers: \[0, 1, 2, 4, 6\]"):
        d.at(3)


def test_invalid_directions():
    with pytest.raises(DirectionError):
        Direction(np.zeros((2, D), np.float32), [1], "moral", "logistic", {})
    with pytest.raises(DirectionError, match="duplicate"):
        Direction(np.zeros((2, D), np.float32), [1, 1], "moral", "logistic", {})
    with pytest.raises(DirectionError, match="contradicts"):
        Direction(np.zeros((1, D), np.float32), [1], "moral", "logistic", {"kind": "economic"})
    with pytest.raises(DirectionError, match="out of range"):
        direction_meta(make_info(), kind="moral", method="m", layers=[7], position="p", stimuli_sha256="x",
                       cv_metrics=None)
    with pytest.raises(DirectionError, match="3 values"):
        direction_meta(make_info(), kind="moral", method="m", layers=[1, 2], position="p", stimuli_sha256="x",
                       cv_metrics={"auc": [1, 2, 3]})


def test_llamacpp_mapping():
    assert llamacpp_index(0) is None and llamacpp_index(1) is None
    assert llamacpp_index(2) == 1 and llamacpp_index(N_LAYERS) == N_LAYERS - 1
    assert all(layer_from_llamacpp_index(llamacpp_index(l)) == l for l in range(2, 30))


# ------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "pt", "gguf"])
def test_round_trip(tmp_path, fmt):
    d = make_direction()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written = save_direction(d, tmp_path / f"moral.{fmt}")
    assert written[0] == tmp_path / f"moral.{fmt}"
    if fmt == "safetensors":
        assert written[1] == tmp_path / "moral.json"
    back = load_direction(written[0])
    assert_same(d, back)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp files left behind


def test_fmt_argument(tmp_path):
    d = make_direction(layers=[3])
    (p,) = save_direction(d, tmp_path / "noext", fmt="npz")
    assert p.name == "noext.npz"
    assert_same(d, load_direction(p))
    with pytest.raises(DirectionError, match="does not match"):
        save_direction(d, tmp_path / "x.npz", fmt="pt")
    with pytest.raises(DirectionError, match="suffix"):
        save_direction(d, tmp_path / "x.bin")


def test_pt_is_weights_only(tmp_path):
    d = make_direction()
    save_direction(d, tmp_path / "d.pt")
    payload = torch.load(tmp_path / "d.pt", weights_only=True)
    assert set(payload) == {"directions", "layers", "meta"}
    assert payload["layers"] == LAYERS and payload["meta"]["kind"] == "moral"


def test_safetensors_layout_and_sidecar_fallback(tmp_path):
    from safetensors import safe_open

    d = make_direction()
    st, side = save_direction(d, tmp_path / "g.safetensors")
    assert side == sidecar_path(st)
    with safe_open(str(st), framework="np") as f:
        assert set(f.keys()) == {"directions", "layers"}
        assert f.get_tensor("directions").dtype == np.float32
        assert f.get_tensor("layers").dtype == np.int64
        assert json.loads(f.metadata()["entangle"]) == d.meta
    assert json.loads(side.read_text()) == d.meta

    # the sidecar wins when present ...
    edited = dict(d.meta, note="edited in the sidecar")
    side.write_text(json.dumps(edited))
    assert load_direction(st).meta["note"] == "edited in the sidecar"
    # ... and the embedded copy is used when it is missing
    side.unlink()
    assert_same(d, load_direction(st))


def test_gguf_read_independently(tmp_path):
    import gguf

    d = make_direction()
    with pytest.warns(UserWarning, match=r"\[0, 1\]"):
        (p,) = save_direction(d, tmp_path / "cv.gguf")
    r = gguf.GGUFReader(str(p))
    assert r.fields["general.architecture"].contents() == "controlvector"
    assert r.fields["controlvector.model_hint"].contents() == "toy-model"
    lc = r.fields["controlvector.layer_count"]
    assert lc.types == [gguf.GGUFValueType.UINT32] and lc.contents() == 3
    tensors = {t.name: t for t in r.tensors}
    # our layer l (output of block l-1) -> llama.cpp direction.(l-1) (added after block l-1); layers 0, 1 skipped
    assert sorted(tensors) == ["direction.1", "direction.3", "direction.5"]
    for layer, name in [(2, "direction.1"), (4, "direction.3"), (6, "direction.5")]:
        t = tensors[name]
        assert t.tensor_type == gguf.GGMLQuantizationType.F32
        assert list(t.shape) == [D]
        assert np.asarray(t.data).tobytes() == d.at(layer).tobytes()
    assert json.loads(r.fields["entangle.meta"].contents()) == d.meta


def test_gguf_foreign_control_vector(tmp_path):
    """A plain llama.cpp control vector (no entangle keys) loads with layers = N + 1."""
    import gguf

    rng = np.random.default_rng(1)
    rows = {1: rng.standard_normal(D).astype(np.float32), 4: rng.standard_normal(D).astype(np.float32)}
    w = gguf.GGUFWriter(str(tmp_path / "foreign.gguf"), arch="controlvector")
    w.add_string("controlvector.model_hint", "llama")
    w.add_uint32("controlvector.layer_count", 2)
    for n, v in rows.items():
        w.add_tensor(f"direction.{n}", v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    d = load_direction(tmp_path / "foreign.gguf")
    assert d.layers == [2, 5] and d.kind == "unknown" and d.meta["model"] == "llama"
    assert d.at(2).tobytes() == rows[1].tobytes() and d.at(5).tobytes() == rows[4].tobytes()


# ------------------------------------------------------------------------------------------- compatibility


def test_check_compatible():
    d = make_direction()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_compatible(d, make_info())  # same model: silent
    with pytest.raises(DirectionError, match=r"d_model 16.*d_model 32"):
        check_compatible(d, make_info(d_model=32))
    with pytest.warns(UserWarning, match=r"fitted on model 'toy-model'.*in use is 'other-model'"):
        check_compatible(d, make_info(name="other-model"))
    with pytest.warns(UserWarning, match="different weights"):
        check_compatible(d, make_info(weights_hash="0000000000000000"))
    with pytest.raises(DirectionError, match="only has residual layers"):
        check_compatible(d, make_info(n_layers=4))


# ------------------------------------------------------------------------------------------- bad files


def test_bad_files(tmp_path):
    with pytest.raises(DirectionError, match="not found"):
        load_direction(tmp_path / "missing.npz")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DirectionError, match="suffix"):
        load_direction(tmp_path / "x.txt")

    np.savez(tmp_path / "partial.npz", directions=np.zeros((1, D), np.float32))
    with pytest.raises(DirectionError, match=r"partial\.npz.*\['layers', 'meta'\]"):
        load_direction(tmp_path / "partial.npz")

    from safetensors.numpy import save_file

    save_file({"weights": np.zeros((1, D), np.float32)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(DirectionError, match=r"w\.safetensors.*\['directions', 'layers'\]"):
        load_direction(tmp_path / "w.safetensors")

    torch.save({"directions": torch.zeros(1, D)}, tmp_path / "p.pt")
    with pytest.raises(DirectionError, match=r"p\.pt.*\['layers', 'meta'\]"):
        load_direction(tmp_path / "p.pt")

    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(DirectionError, match=r"junk\.gguf"):
        load_direction(tmp_path / "junk.gguf")

    # safetensors with neither sidecar nor embedded metadata
    save_file({"directions": np.zeros((1, D), np.float32), "layers": np.array([1])}, str(tmp_path / "n.safetensors"))
    with pytest.raises(DirectionError, match="no metadata"):
        load_direction(tmp_path / "n.safetensors")


# ------------------------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "pt", "gguf"])
def test_atomic_write_keeps_previous_file(tmp_path, monkeypatch, fmt):
    old = make_direction(kind="moral", seed=1)
    new = make_direction(kind="economic", seed=2)
    target = tmp_path / f"d.{fmt}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_direction(old, target)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    import entangle.files as mod

    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        raise OSError("disk full (simulated)")

    # failure at the final move: nothing at the target changes
    monkeypatch.setattr(mod.os, "replace", failing_replace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(OSError, match="simulated"):
            save_direction(new, target)
    monkeypatch.setattr(mod.os, "replace", real_replace)
    assert calls
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old files intact, no temp files
    assert_same(old, load_direction(target))


def test_atomic_write_failure_mid_write(tmp_path, monkeypatch):
    """A writer that dies half-way (after writing some bytes) leaves the old file and no debris."""
    old = make_direction(seed=1)
    target = tmp_path / "d.pt"
    save_direction(old, target)
    before = target.read_bytes()

    def half_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half")
        raise RuntimeError("crash mid-write")

    monkeypatch.setattr(torch, "save", half_save)
    with pytest.raises(RuntimeError, match="mid-write"):
        save_direction(make_direction(seed=2), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.pt"]


def test_every_format_gets_the_shared_file_permissions(tmp_path):
    """Direction files are written through entangle.files, so they get 0644 less the umask like every output."""
    mask = os.umask(0o022)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            written = [p for fmt in ("safetensors", "npz", "pt", "gguf")
                       for p in save_direction(make_direction(), tmp_path / f"d.{fmt}")]
    finally:
        os.umask(mask)
    assert len(written) == 5 and {oct(p.stat().st_mode & 0o777) for p in written} == {"0o644"}


# ------------------------------------------------------------------------------------------- refused on load


def test_sidecar_contradicting_embedded_metadata_is_refused(tmp_path):
    save_direction(make_direction(kind="moral"), tmp_path / "d.safetensors")
    side = tmp_path / "d.json"
    meta = json.loads(side.read_text())
    meta["kind"] = "economic"
    side.write_text(json.dumps(meta))
    with pytest.raises(DirectionError, match=r"d\.json: field 'kind': the sidecar says 'economic'.*'moral'"):
        load_direction(tmp_path / "d.safetensors")


def test_zero_direction_is_refused(tmp_path):
    d = make_direction()
    d.vectors[1] = 0.0
    save_direction(Direction(d.vectors, d.layers, d.kind, d.method, d.meta), tmp_path / "z.npz")
    with pytest.raises(DirectionError, match=rf"degenerate direction.*\[{LAYERS[1]}\]"):
        load_direction(tmp_path / "z.npz")


def test_direction_error_is_an_input_error():
    from entangle.files import InputError

    err = DirectionError("x.npz: broken")
    assert isinstance(err, InputError) and str(err) == "x.npz: broken"
