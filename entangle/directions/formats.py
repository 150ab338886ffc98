"""Direction files: save and load in every format (safetensors + JSON sidecar, npz, pt, llama.cpp GGUF), all
written atomically and round-tripping bitwise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from entangle.directions.direction import (
    FORMATS,
    SAFETENSORS_META_KEY,
    Direction,
    DirectionError,
    _dumps,
    _from_parts,
    _need,
    _parse_json,
)
from entangle.directions.gguf import _load_gguf, _write_gguf
from entangle.files import atomic_write, atomic_write_many

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


# ----------------------------------------------------------------------------------------------- reading


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
