"""On-disk activation cache: keyed by everything a capture depends on, written atomically, resumable by batch.

Layout of one entry, `<root>/<model>/<key>/`:
  plan.json          the prompts in run order and the batch boundaries (fixed before the first batch runs)
  prompts.csv        one row per prompt: item, kind, template, factors, token counts
  acts_<pos>.npy     float32 [n_prompts, n_layers + 1, d_model], memory-mapped (numpy .npy, not safetensors,
                     because batches are written in place as they finish and a reader maps it without loading)
  readouts.npy       float32 [n_prompts, 3]: readout value, judged-sentence log-prob per token, judged tokens
  progress.json      the batches already flushed to disk (a batch is redone if it is not listed)
  manifest.json      written last: its presence marks the entry complete
While a capture runs the entry lives in `<key>.partial/`; it is renamed to `<key>/` only when complete, so a
reader never sees half an entry and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from entangle.files import atomic_write, atomic_write_json, clean_json

CACHE_FORMAT = 1
DEFAULT_CACHE = Path(os.environ.get("ENTANGLE_CACHE", ".entangle_cache"))


def cache_key(parts: dict[str, Any]) -> str:
    """A short stable hash of everything a capture depends on."""
    blob = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=clean_json)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class CacheEntry:
    """One cache entry (complete or partial) for a given key."""

    def __init__(self, root: str | Path, model_name: str, key: str):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_name)
        self.dir = Path(root) / safe / key
        self.partial = self.dir.with_name(key + ".partial")
        self.key = key

    @property
    def complete(self) -> bool:
        return (self.dir / "manifest.json").exists()

    def work_dir(self) -> Path:
        """The folder to write into: the partial folder (created if needed)."""
        self.partial.mkdir(parents=True, exist_ok=True)
        return self.partial

    def open_array(self, name: str, shape: tuple[int, ...], folder: Path) -> np.memmap:
        """Open (or create, zero-filled) a float32 .npy array for in-place batch writes."""
        path = folder / f"{name}.npy"
        if path.exists():
            arr = np.load(path, mmap_mode="r+")
            if arr.shape == shape and arr.dtype == np.float32:
                return arr
        return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)

    def _progress(self) -> dict[str, Any]:
        path = self.partial / "progress.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def done_batches(self) -> set[int]:
        """Batches already flushed in the partial folder."""
        return set(self._progress().get("done", []))

    def seconds_so_far(self) -> float:
        """Compute time already spent on this entry by earlier (interrupted) segments."""
        return float(self._progress().get("seconds", 0.0))

    def mark_done(self, done: set[int], seconds: float = 0.0) -> None:
        """Record flushed batches and the time spent so far (atomic: an interrupt keeps the previous record)."""
        atomic_write_json(self.partial / "progress.json", {"done": sorted(done), "seconds": round(seconds, 3)})

    def finalise(self, manifest: dict[str, Any]) -> None:
        """Write the manifest and rename the partial folder into place."""
        atomic_write_json(self.partial / "manifest.json", manifest)
        (self.partial / "progress.json").unlink(missing_ok=True)
        os.replace(self.partial, self.dir)

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.dir / "manifest.json").read_text())


def cached_arrays(cache_dir: str | Path | None, model_info: Any, parts: dict[str, Any],
                  compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays computed once per (model, weights, dtype, `parts`) and kept under `<cache_dir>/<model>/arrays/`:
    re-measurements, null draws and attribution matrices are read back on a warm run. No cache_dir: just compute."""
    if cache_dir is None:
        return compute()
    key = cache_key({"model": model_info.name, "weights": model_info.weights_hash, "dtype": model_info.dtype,
                     **parts})
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_info.name)
    path = Path(cache_dir) / safe / "arrays" / f"{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    arrays = compute()

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez(f, **arrays)

    atomic_write(path, save)
    return arrays
