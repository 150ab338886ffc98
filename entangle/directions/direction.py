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

from entangle.files import InputError
from entangle.hookpoints import resid_hook
from entangle.models import ModelInfo

SIGN_CONVENTION = "positive = good on the direction's kind (projection of good items > bad items)"
FORMAT_VERSION = 1
FORMATS = ("safetensors", "npz", "pt", "gguf")

SAFETENSORS_META_KEY = "entangle"


class DirectionError(InputError):
    """A direction file or object is unusable (missing, malformed, or incompatible with the model).

    The message already names the file where there is one, so the CLI prints it as one line like any InputError.
    """

    def __init__(self, message: str) -> None:
        super().__init__(None, None, None, message)

    def __reduce__(self):  # picklable with its one-argument init
        return (type(self), (self.message,))


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
