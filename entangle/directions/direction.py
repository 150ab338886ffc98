"""Per-layer "good" directions: the `Direction` container, its provenance metadata, and file formats.

A `Direction` holds one float32 row per residual layer (layer numbering as in `entangle.hookpoints`:
0 = embedding output `embed.hook_out`, l >= 1 = output of block l-1 `blocks.{l-1}.hook_out`).
Sign convention: positive = good on the direction's kind (good items project higher than bad ones).

Formats (chosen by suffix, or `fmt=`); every one of them round-trips bitwise through `load_direction`:

* ``.safetensors`` - tensors ``directions`` [n, d] float32 and ``layers`` [n] int64; the metadata JSON is
  written both to a sidecar ``<stem>.json`` and into the safetensors header (``__metadata__["entangle"]``).
  The loader prefers the sidecar and falls back to the embedded copy when the sidecar is missing.
* ``.npz`` - arrays ``directions``, ``layers`` and ``meta`` (the JSON as a 0-d string array).
* ``.pt`` - ``torch.save({"directions": tensor, "layers": list, "meta": dict})``; plain types only, so it
  loads with ``torch.load(..., weights_only=True)``.
* ``.gguf`` - a llama.cpp control vector (``--control-vector``), written with ``gguf.GGUFWriter``:
  ``general.architecture = "controlvector"``, ``controlvector.model_hint`` (model name, str),
  ``controlvector.layer_count`` (uint32, number of ``direction.N`` tensors) and one F32 tensor
  ``direction.N`` of shape [d_model] per representable layer.

llama.cpp layer mapping (checked against llama.cpp ``common_control_vector_load_one``,
``llama_adapter_cvec::apply``/``apply_to`` and the model graphs' ``build_cvec``)::

    direction.N  is added to the output of block N (0-based), i.e. after the block's last residual add
                 (``cur = ggml_add(cur, ffn_inp); cur = build_cvec(cur, il); cb(cur, "l_out", il)``),
                 at every position; N = 0 is rejected by the loader ("invalid (zero) direction tensor
                 layer index"), and only N in 1..n_layers-1 has a tensor to add to.
    our layer l  is the output of block l-1, so        N = l - 1   and   l = N + 1.

So residual layers 2..n_layers are exported as ``direction.1`` .. ``direction.{n_layers-1}``. Layers 0
(embedding output) and 1 (output of block 0) cannot be expressed as a llama.cpp control vector: they are
left out of the ``direction.*`` tensors with a warning, and kept only as entangle metadata (float32
arrays under ``entangle.layer.<l>``, ignored by llama.cpp) so that our own loader still round-trips them.
The full metadata JSON is stored under the string key ``entangle.meta`` and the row order under
``entangle.layers``. Note llama.cpp adds the vector as is (times ``--control-vector-scaled`` strength):
a unit row is a very small push; scale it before use in llama.cpp.

All writes go through `entangle.files` (temp file in the target folder, fsync, rename; a tensor file and its
sidecar are committed together), so every file gets the same permissions as every other output.

Loading refuses what would give a silently wrong result: a sidecar that contradicts the metadata embedded in its
safetensors file, and a degenerate (all-zero) row, which would score every text 0.0.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from entangle.files import InputError, atomic_write, atomic_write_many
from entangle.hookpoints import resid_hook
from entangle.models import ModelInfo

SIGN_CONVENTION = "positive = good on the direction's kind (projection of good items > bad items)"
FORMAT_VERSION = 1
FORMATS = ("safetensors", "npz", "pt", "gguf")

GGUF_ARCH = "controlvector"
GGUF_KEY_MODEL_HINT = "controlvector.model_hint"
GGUF_KEY_LAYER_COUNT = "controlvector.layer_count"
GGUF_KEY_META = "entangle.meta"
GGUF_KEY_LAYERS = "entangle.layers"
GGUF_KEY_EXTRA_LAYER = "entangle.layer."  # + residual layer number, for rows llama.cpp cannot apply
SAFETENSORS_META_KEY = "entangle"


class DirectionError(InputError):
    """A direction file or object is unusable (missing, malformed, or incompatible with the model).

    The message already names the file where there is one, so the CLI prints it as one line like any InputError.
    """

    def __init__(self, message: str) -> None:
        super().__init__(None, None, None, message)

    def __reduce__(self):  # picklable with its one-argument init
        return (type(self), (self.message,))


# ----------------------------------------------------------------------------------------------- mapping


def llamacpp_index(layer: int) -> int | None:
    """llama.cpp control-vector index N (``direction.N``) for residual layer `layer`, or None if not representable.

    ``direction.N`` is added to the output of block N (0-based), N >= 1; our layer l is the output of
    block l-1, so N = l-1; layers 0 and 1 have no control-vector slot.
    """
    if layer < 0:
        raise ValueError(f"layer must be >= 0, got {layer}")
    n = layer - 1
    return n if n >= 1 else None


def layer_from_llamacpp_index(n: int) -> int:
    """Residual layer number whose activation ``direction.N`` is added to (inverse of `llamacpp_index`)."""
    if n < 1:
        raise ValueError(f"llama.cpp control-vector indices start at 1, got {n}")
    return n + 1


# ----------------------------------------------------------------------------------------------- JSON


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _dumps(meta: dict) -> str:
    return json.dumps(meta, default=_json_default, ensure_ascii=False)


def _normalise_meta(meta: Any) -> dict:
    """The meta dict as it will read back from JSON (tuples -> lists, numpy scalars -> Python, int keys -> str)."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise DirectionError(f"meta must be a dict, got {type(meta).__name__}")
    try:
        return json.loads(_dumps(meta))
    except (TypeError, ValueError) as e:
        raise DirectionError(f"direction meta is not JSON-serialisable: {e}") from e


# ----------------------------------------------------------------------------------------------- Direction


@dataclass
class Direction:
    """One direction per residual layer; row i of `vectors` belongs to `layers[i]`.

    On construction, `vectors` become a C-contiguous float32 [n, d_model] array, `layers` a list of int,
    and `meta` is normalised through JSON; `meta` gains the derived fields kind, method, layers,
    hook_points, sign_convention (if absent) and norm (per-row L2 norms, always recomputed).
    Present-but-contradictory kind/method/layers/d_model in meta raise DirectionError.
    """

    vectors: np.ndarray
    layers: list[int]
    kind: str
    method: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        v = self.vectors
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        v = np.asarray(v)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2:
            raise DirectionError(f"vectors must be [n_layers, d_model], got shape {tuple(v.shape)}")
        v = np.ascontiguousarray(v, dtype=np.float32)
        layers = [int(x) for x in np.asarray(self.layers).reshape(-1).tolist()]
        if len(layers) != v.shape[0]:
            raise DirectionError(f"{v.shape[0]} vector rows but {len(layers)} layers {layers}")
        if not layers:
            raise DirectionError("a direction needs at least one layer")
        if len(set(layers)) != len(layers):
            raise DirectionError(f"duplicate layers in {layers}")
        if min(layers) < 0:
            raise DirectionError(f"layers must be >= 0 (0 = embedding output), got {layers}")
        if v.shape[1] == 0:
            raise DirectionError("d_model must be > 0")
        if not np.isfinite(v).all():
            raise DirectionError("direction vectors contain NaN or inf")
        self.vectors = v
        self.layers = layers
        self.kind = str(self.kind)
        self.method = str(self.method)

        meta = _normalise_meta(self.meta)
        for key, ours in (("kind", self.kind), ("method", self.method), ("layers", layers)):
            if key in meta and meta[key] != ours:
                raise DirectionError(f"meta[{key!r}] = {meta[key]!r} contradicts the direction's {key} {ours!r}")
            meta[key] = ours
        if "d_model" in meta and meta["d_model"] != v.shape[1]:
            raise DirectionError(f"meta['d_model'] = {meta['d_model']} but the vectors have width {v.shape[1]}")
        meta.setdefault("hook_points", [resid_hook(layer) for layer in layers])
        meta.setdefault("sign_convention", SIGN_CONVENTION)
        meta["norm"] = [float(np.linalg.norm(row.astype(np.float64))) for row in v]
        self.meta = meta

    @property
    def d_model(self) -> int:
        return int(self.vectors.shape[1])

    def at(self, layer: int) -> np.ndarray:
        """The vector for residual layer `layer` (a view into `vectors`)."""
        try:
            i = self.layers.index(int(layer))
        except ValueError:
            raise KeyError(f"layer {layer} not in this {self.kind} direction; available layers: {self.layers}") from None
        return self.vectors[i]

    def to_torch(self, layer: int, device: Any = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The vector for `layer` as a fresh torch tensor (float32 unless `dtype`), on `device`."""
        t = torch.from_numpy(self.at(layer).copy())
        return t.to(device=device, dtype=dtype) if (device is not None or dtype is not None) else t

    def __repr__(self) -> str:
        return (f"Direction(kind={self.kind!r}, method={self.method!r}, layers={self.layers}, "
                f"d_model={self.d_model}, model={self.meta.get('model')!r})")


# ----------------------------------------------------------------------------------------------- metadata


def direction_meta(
    model_info: ModelInfo,
    *,
    kind: str,
    method: str,
    layers: list[int],
    position: str,
    stimuli_sha256: str,
    cv_metrics: dict | None,
    templates: list[str] | None = None,
    extra: dict | None = None,
) -> dict:
    """Provenance for a direction fitted on `model_info` (JSON-serialisable).

    `cv_metrics` maps a metric name to per-layer values (one per entry of `layers`), e.g.
    ``{"accuracy": [...], "auc": [...]}``. `extra` keys are merged in at top level and may not
    override the standard keys. `norm` is filled in by `Direction` from the actual rows.
    """
    from entangle import __version__  # noqa: PLC0415  (avoid an import cycle at package import)

    layers = [int(x) for x in layers]
    bad = [x for x in layers if x < 0 or x > model_info.n_layers]
    if bad:
        raise DirectionError(f"layers {bad} out of range 0..{model_info.n_layers} for model {model_info.name}")
    metrics: dict | None = None
    if cv_metrics is not None:
        metrics = {}
        for name, values in cv_metrics.items():
            if isinstance(values, (list, tuple, np.ndarray, torch.Tensor)):
                values = _json_default(values) if not isinstance(values, (list, tuple)) else list(values)
                if len(values) != len(layers):
                    raise DirectionError(
                        f"cv_metrics[{name!r}] has {len(values)} values for {len(layers)} layers {layers}")
            metrics[str(name)] = values
    meta: dict[str, Any] = {
        "model": model_info.name,
        "model_source": model_info.source,
        "weights_hash": model_info.weights_hash,
        "d_model": model_info.d_model,
        "n_layers": model_info.n_layers,
        "chat": model_info.chat,
        "dtype": model_info.dtype,
        "hook_points": [resid_hook(x) for x in layers],
        "layers": layers,
        "position": position,
        "bos_policy": model_info.bos_policy,
        "padding_side": model_info.padding_side,
        "kind": kind,
        "method": method,
        "sign_convention": SIGN_CONVENTION,
        "norm": None,
        "stimuli_sha256": stimuli_sha256,
        "cv_metrics": metrics,
        "templates": list(templates) if templates is not None else None,
        "entangle_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "format_version": FORMAT_VERSION,
    }
    if extra:
        clash = sorted(set(extra) & set(meta))
        if clash:
            raise DirectionError(f"extra metadata may not override standard keys: {clash}")
        meta.update(extra)
    return _normalise_meta(meta)


def check_compatible(direction: Direction, model_info: ModelInfo) -> None:
    """Raise DirectionError if `direction` cannot be used with the model; warn if it was fitted on another one."""
    if direction.d_model != model_info.d_model:
        raise DirectionError(
            f"direction ({direction.kind}, fitted on {direction.meta.get('model', 'an unknown model')}) has "
            f"d_model {direction.d_model}, but model {model_info.name} has d_model {model_info.d_model}")
    too_deep = [x for x in direction.layers if x > model_info.n_layers]
    if too_deep:
        raise DirectionError(
            f"direction has layers {too_deep}, but model {model_info.name} only has residual layers "
            f"0..{model_info.n_layers}")
    fitted_name = direction.meta.get("model")
    fitted_hash = direction.meta.get("weights_hash")
    reasons = []
    if fitted_name is not None and fitted_name != model_info.name:
        reasons.append("a different model name")
    if fitted_hash is not None and fitted_hash != model_info.weights_hash:
        reasons.append("different weights")
    if reasons:
        warnings.warn(
            f"this {direction.kind} direction was fitted on model {fitted_name!r} (weights {fitted_hash}), "
            f"but the model in use is {model_info.name!r} (weights {model_info.weights_hash}): "
            f"{' and '.join(reasons)}; results may not transfer",
            UserWarning, stacklevel=2)


# ----------------------------------------------------------------------------------------------- writing


def _resolve_format(path: Path, fmt: str | None) -> tuple[Path, str]:
    suffix = path.suffix.lower().lstrip(".")
    if fmt is None:
        if suffix not in FORMATS:
            raise DirectionError(
                f"{path}: cannot infer the direction format from suffix {path.suffix!r}; "
                f"use one of {', '.join('.' + f for f in FORMATS)} or pass fmt=")
        return path, suffix
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise DirectionError(f"unknown direction format {fmt!r}; expected one of {FORMATS}")
    if not path.suffix:
        return path.with_name(path.name + "." + fmt), fmt
    if suffix != fmt:
        raise DirectionError(f"{path}: suffix {path.suffix!r} does not match fmt={fmt!r}")
    return path, fmt


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar that goes with a .safetensors direction file (``<stem>.json``)."""
    return Path(path).with_suffix(".json")


def save_direction(direction: Direction, path: str | Path, fmt: str | None = None) -> list[Path]:
    """Write `direction` to `path` (format from the suffix, or `fmt`); return the files written.

    .safetensors also writes the sidecar ``<stem>.json``. .gguf warns about (and leaves out of the
    llama.cpp tensors) layers 0 and 1, which llama.cpp cannot apply; see the module docstring.
    """
    path, fmt = _resolve_format(Path(path), fmt)
    meta_json = _dumps(direction.meta)
    vectors = np.ascontiguousarray(direction.vectors, dtype=np.float32)
    layers = np.asarray(direction.layers, dtype=np.int64)

    if fmt == "safetensors":
        from safetensors.numpy import save as st_save  # noqa: PLC0415

        blob = st_save({"directions": vectors, "layers": layers}, metadata={SAFETENSORS_META_KEY: meta_json})
        side = sidecar_path(path)
        if side == path:
            raise DirectionError(f"{path}: sidecar would overwrite the tensor file")
        return atomic_write_many([(path, lambda tmp: tmp.write_bytes(blob)),
                                  (side, lambda tmp: tmp.write_text(meta_json + "\n", encoding="utf-8"))])

    if fmt == "npz":
        def write_npz(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, directions=vectors, layers=layers, meta=np.array(meta_json))

        return [atomic_write(path, write_npz)]

    if fmt == "pt":
        payload = {"directions": torch.from_numpy(vectors.copy()), "layers": list(direction.layers),
                   "meta": json.loads(meta_json)}
        return [atomic_write(path, lambda tmp: torch.save(payload, tmp))]

    return [atomic_write(path, lambda tmp: _write_gguf(direction, vectors, meta_json, tmp))]


def _write_gguf(direction: Direction, vectors: np.ndarray, meta_json: str, tmp: Path) -> None:
    import gguf  # noqa: PLC0415

    skipped = [layer for layer in direction.layers if llamacpp_index(layer) is None]
    if skipped:
        warnings.warn(
            f"GGUF control vector: residual layer(s) {skipped} (embedding output / output of block 0) cannot be "
            f"applied by llama.cpp (direction.N goes after block N, N >= 1); they are left out of the "
            f"direction.* tensors and kept only as entangle metadata", UserWarning, stacklevel=3)
    n_tensors = len(direction.layers) - len(skipped)
    writer = gguf.GGUFWriter(str(tmp), arch=GGUF_ARCH)
    try:
        writer.add_string(GGUF_KEY_MODEL_HINT, str(direction.meta.get("model") or "unknown"))
        writer.add_uint32(GGUF_KEY_LAYER_COUNT, n_tensors)
        writer.add_string(GGUF_KEY_META, meta_json)
        writer.add_key_value(GGUF_KEY_LAYERS, list(direction.layers), gguf.GGUFValueType.ARRAY,
                             sub_type=gguf.GGUFValueType.INT64)
        for i, layer in enumerate(direction.layers):
            n = llamacpp_index(layer)
            if n is None:
                writer.add_key_value(f"{GGUF_KEY_EXTRA_LAYER}{layer}", [float(x) for x in vectors[i]],
                                     gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.FLOAT32)
            else:
                writer.add_tensor(f"direction.{n}", vectors[i].copy())
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


# ----------------------------------------------------------------------------------------------- reading


def _need(path: Path, have: Any, keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in have]
    if missing:
        raise DirectionError(f"{path}: not an entangle direction file, missing {what} {missing}")


def _from_parts(path: Path, vectors: Any, layers: Any, meta: Any) -> Direction:
    if not isinstance(meta, dict):
        raise DirectionError(f"{path}: metadata is not a JSON object")
    _need(path, meta, ("kind", "method"), "metadata keys")
    try:
        direction = Direction(vectors=vectors, layers=list(np.asarray(layers).reshape(-1).tolist()),
                         kind=meta["kind"], method=meta["method"], meta=meta)
    except DirectionError as e:
        raise DirectionError(f"{path}: {e}") from e
    zero = [layer for layer, norm in zip(direction.layers, direction.meta["norm"], strict=True) if not norm > 0]
    if zero:
        raise DirectionError(f"{path}: degenerate direction: the row(s) for layer(s) {zero} are all zeros, so every "
                             f"text would project to 0.0")
    return direction


def _parse_json(path: Path, text: str, where: str) -> dict:
    try:
        return json.loads(text)
    except ValueError as e:
        raise DirectionError(f"{path}: {where} is not valid JSON: {e}") from e


def load_direction(path: str | Path) -> Direction:
    """Read a direction written by `save_direction` (or a foreign llama.cpp control-vector .gguf)."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise DirectionError(
            f"{path}: unknown direction file suffix {path.suffix!r}; expected one of "
            f"{', '.join('.' + f for f in FORMATS)}")
    if not path.is_file():
        raise DirectionError(f"direction file not found: {path}")
    try:
        if suffix == "safetensors":
            return _load_safetensors(path)
        if suffix == "npz":
            return _load_npz(path)
        if suffix == "pt":
            return _load_pt(path)
        return _load_gguf(path)
    except DirectionError:
        raise
    except Exception as e:  # corrupt or truncated file: say which one
        raise DirectionError(f"{path}: cannot read {suffix} direction file: {type(e).__name__}: {e}") from e


def _load_safetensors(path: Path) -> Direction:
    from safetensors import safe_open  # noqa: PLC0415

    with safe_open(str(path), framework="np") as f:
        names = set(f.keys())
        _need(path, names, ("directions", "layers"), "tensors")
        vectors = f.get_tensor("directions")
        layers = f.get_tensor("layers")
        embedded = (f.metadata() or {}).get(SAFETENSORS_META_KEY)
    side = sidecar_path(path)
    if side.is_file():
        meta = _parse_json(path, side.read_text(encoding="utf-8"), f"sidecar {side.name}")
        if embedded is not None:
            _check_sidecar_agrees(path, side, meta, _parse_json(path, embedded, "embedded metadata"))
    elif embedded is not None:
        meta = _parse_json(path, embedded, "embedded metadata")
    else:
        raise DirectionError(
            f"{path}: no metadata: sidecar {side.name} is missing and the file has no "
            f"__metadata__[{SAFETENSORS_META_KEY!r}]")
    return _from_parts(path, vectors, layers, meta)


SIDECAR_MUST_AGREE = ("kind", "method", "layers", "model", "weights_hash", "d_model", "position")
"""Metadata a sidecar may not contradict in its safetensors file's embedded copy (it would win silently)."""


def _check_sidecar_agrees(path: Path, side: Path, sidecar: Any, embedded: Any) -> None:
    if not isinstance(sidecar, dict) or not isinstance(embedded, dict):
        return  # _from_parts reports a non-object sidecar; a non-object embedded copy has nothing to contradict
    for key in SIDECAR_MUST_AGREE:
        if key in sidecar and key in embedded and sidecar[key] != embedded[key]:
            raise DirectionError(
                f"{side}: field '{key}': the sidecar says {sidecar[key]!r} but {path.name} itself says "
                f"{embedded[key]!r}; the sidecar belongs to another direction (remove it or re-export)")


def _load_npz(path: Path) -> Direction:
    with np.load(path, allow_pickle=False) as z:
        _need(path, z.files, ("directions", "layers", "meta"), "arrays")
        vectors, layers, meta_json = z["directions"], z["layers"], str(z["meta"][()])
    return _from_parts(path, vectors, layers, _parse_json(path, meta_json, "array 'meta'"))


def _load_pt(path: Path) -> Direction:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict):
        raise DirectionError(f"{path}: expected a dict with directions/layers/meta, got {type(payload).__name__}")
    _need(path, payload, ("directions", "layers", "meta"), "entries")
    vectors = payload["directions"]
    if not isinstance(vectors, torch.Tensor):
        raise DirectionError(f"{path}: 'directions' is not a tensor")
    return _from_parts(path, vectors.detach().cpu().numpy(), payload["layers"], payload["meta"])


def _gguf_field(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def _load_gguf(path: Path) -> Direction:
    import gguf  # noqa: PLC0415

    reader = gguf.GGUFReader(str(path))
    arch = _gguf_field(reader, "general.architecture")
    if arch != GGUF_ARCH:
        raise DirectionError(f"{path}: general.architecture is {arch!r}, expected {GGUF_ARCH!r} (control vector)")
    rows: dict[int, np.ndarray] = {}
    for t in reader.tensors:
        prefix, _, idx = t.name.partition(".")
        if prefix != "direction" or not idx.isdigit() or int(idx) < 1:
            raise DirectionError(f"{path}: unexpected tensor {t.name!r} (expected direction.N, N >= 1)")
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise DirectionError(f"{path}: tensor {t.name} is {t.tensor_type.name}, expected F32")
        rows[layer_from_llamacpp_index(int(idx))] = np.array(t.data, dtype=np.float32).reshape(-1)
    for key, f in reader.fields.items():
        if key.startswith(GGUF_KEY_EXTRA_LAYER):
            layer = int(key[len(GGUF_KEY_EXTRA_LAYER):])
            rows[layer] = np.array([f.parts[i][0] for i in f.data], dtype=np.float32)
    meta_json = _gguf_field(reader, GGUF_KEY_META)
    order = _gguf_field(reader, GGUF_KEY_LAYERS)
    hint = _gguf_field(reader, GGUF_KEY_MODEL_HINT)
    del reader  # release the memory map
    if not rows:
        raise DirectionError(f"{path}: no direction tensors (direction.N) and no entangle layers found")
    if meta_json is None:  # a foreign control vector (llama.cpp cvector-generator, repeng, ...)
        layers = sorted(rows)
        meta = {"model": hint, "kind": "unknown", "method": "gguf-controlvector", "source_file": path.name}
    else:
        meta = _parse_json(path, meta_json, f"key {GGUF_KEY_META}")
        layers = [int(x) for x in order] if order is not None else sorted(rows)
    missing = [x for x in layers if x not in rows]
    if missing:
        raise DirectionError(f"{path}: layers {missing} are listed but have no direction tensor or entangle row")
    vectors = np.stack([rows[x] for x in layers])
    return _from_parts(path, vectors, layers, meta)
