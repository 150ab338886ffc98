"""benchmarks/capture.py --quick runs end to end on the tiny model, prints every figure and writes valid JSON.

No timing is asserted: only that each figure is present, finite where it must be, and consistent in shape.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "capture.py"

PRINTED = [
    "date ", "CPUs", "torch ", "threads",
    "1. Capture throughput vs plain HF forward", "hf_forward", "hf_pristine", "hf_forward_keep1", "bridge_forward",
    "bridge_hooks", "capture ", "capture throughput ratio:",
    "2. fp32 vs bf16", "speed ratio bf16/fp32:", "activation relative difference", "judged_mean", "readout (cloze log-odds)",
    "3. Cold vs cached capture()", "cold capture:", "cached:", "cold/cached speedup:",
    "4. Peak memory", "RSS after model load:", "peak RSS during capture:", "cache on disk:", "CUDA",
]


@pytest.fixture(scope="module")
def quick_run(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--model", str(tiny_dir), "--json", str(out)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, f"benchmark failed:\nSTDOUT\n{proc.stdout}\nSTDERR\n{proc.stderr[-4000:]}"
    return proc.stdout, json.loads(out.read_text())


def test_prints_every_figure(quick_run):
    stdout, _ = quick_run
    missing = [s for s in PRINTED if s not in stdout]
    assert not missing, f"missing from the printed table: {missing}\n{stdout}"


def _positive(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def test_json_has_expected_keys(quick_run):
    _, res = quick_run
    assert {"machine", "config", "throughput", "dtype", "cache", "memory", "wall_seconds"} <= set(res)
    m = res["machine"]
    assert {"date", "cpu_count", "torch", "torch_threads", "device"} <= set(m)
    assert res["config"]["quick"] is True

    t = res["throughput"]
    assert t["baseline"] == "hf_forward" and t["tokens"] > 0 and t["padded_tokens"] >= t["tokens"]
    assert set(t["variants"]) == {"hf_forward", "hf_pristine", "hf_forward_keep1", "bridge_forward", "bridge_hooks", "capture"}
    for v in t["variants"].values():
        assert {"seconds_median", "tokens_per_s_median", "ratio_to_baseline", "ratio_min", "ratio_max"} <= set(v)
        assert _positive(v["tokens_per_s_median"]) and _positive(v["ratio_to_baseline"])
    assert t["variants"]["hf_forward"]["ratio_to_baseline"] == pytest.approx(1.0)
    assert _positive(t["capture_ratio"]) and t["goal"] == 0.95

    d = res["dtype"]
    assert _positive(d["speed_ratio_bf16_over_fp32"])
    assert set(d["tokens_per_s_median"]) == {"float32", "bfloat16"}
    assert set(d["activations_rel_diff"]) == {"last", "judged_mean"}
    for a in d["activations_rel_diff"].values():
        assert 0 < a["median"] <= a["max"] < 1  # bf16 rounding: nonzero, well under 100 %
        assert len(a["per_layer_median"]) == len(a["per_layer_max"]) == 4  # tiny model: 3 layers + embedding
    assert math.isfinite(d["readout_max_abs_diff"])

    c = res["cache"]
    assert {"cold", "cached", "cached_plus_read"} == set(c["seconds_median"])
    assert all(_positive(s) for s in c["seconds_median"].values())
    assert _positive(c["speedup_cold_over_cached"])

    mem = res["memory"]
    for k in ("rss_after_load_mb", "peak_rss_during_capture_mb", "cache_disk_mb", "lifetime_peak_rss_mb"):
        assert _positive(mem[k]), k
    assert mem["capture_self_checks_passed"] is True
    assert "cuda_max_allocated_during_capture_mb" in mem  # None on CPU


def test_quick_flag_overrides_sizes():
    spec = importlib.util.spec_from_file_location("bench_capture", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = mod.parse_args(["--quick", "--frames", "9"])
    assert (args.frames, args.batch_size, args.repeats, args.max_batches) == (1, 8, 1, 2)
    args = mod.parse_args([])
    assert (args.model, args.frames, args.batch_size, args.repeats, args.device) == ("smollm2-135m", 4, 32, 3, "cpu")
