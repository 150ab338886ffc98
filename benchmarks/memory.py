"""Memory figures of a capture: resident set size after the model load and its peak during the first capture.

Linux's high-water mark (`VmHWM`, reset through /proc/self/clear_refs) catches short peaks a sampler would miss;
a 2 ms sampling thread covers systems without it. Used by benchmarks/capture.py (section 4).
"""

from __future__ import annotations

import os
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

import torch
from benchlib import sync

from entangle.engine import capture
from entangle.models import LoadedModel
from entangle.stimuli import StimulusSet


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _vm_hwm() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class PeakRSS:
    """Peak RSS inside a `with` block: the kernel's high-water mark (reset on entry) where Linux allows it, and a
    2 ms sampling thread in any case; the larger of the two is reported."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak, self.method = interval, 0, "sampled"
        self._stop = threading.Event()
        self._hwm_ok = False

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self._hwm_ok = _vm_hwm() is not None
        except OSError:
            pass
        self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        hwm = _vm_hwm() if self._hwm_ok else None
        if hwm is not None:
            self.method = "VmHWM (reset via clear_refs) + 2 ms sampling"
            self.peak = max(self.peak, hwm)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def section_memory(model: LoadedModel, stimuli: StimulusSet, batch_size: int, device: torch.device, root: Path,
                   rss_loaded: int) -> tuple[dict[str, Any], Path]:
    """The first capture after the model load (it also warms the process up for the timed sections)."""
    cache = Path(tempfile.mkdtemp(prefix="mem_", dir=root))
    cuda_loaded = None
    if device.type == "cuda":
        sync(device)
        cuda_loaded = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    with PeakRSS() as peak:
        t0 = time.perf_counter()
        aset = capture(model, stimuli, batch_size=batch_size, cache_dir=cache, progress=False)
        sync(device)
        secs = time.perf_counter() - t0
    return {
        "rss_after_load_mb": rss_loaded / 2**20, "peak_rss_during_capture_mb": peak.peak / 2**20,
        "peak_over_loaded": peak.peak / rss_loaded, "peak_minus_loaded_mb": (peak.peak - rss_loaded) / 2**20,
        "method": peak.method,
        "lifetime_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # includes the load
        "cache_disk_mb": dir_bytes(cache) / 2**20, "n_prompts": len(aset.prompts), "first_capture_seconds": secs,
        "manifest": {k: aset.manifest[k] for k in ("capture_seconds", "tokens", "tokens_shared_prefix")},
        "capture_self_checks_passed": all(c.get("passed", False) for c in aset.manifest["self_checks"].values()),
        "cuda_allocated_after_load_mb": None if cuda_loaded is None else cuda_loaded / 2**20,
        "cuda_max_allocated_during_capture_mb": (torch.cuda.max_memory_allocated(device) / 2**20
                                                 if device.type == "cuda" else None),
    }, cache
