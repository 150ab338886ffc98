"""The benchmark scripts run end to end on the tiny model, print their ratios and write valid JSON.

No timing is asserted: only that each figure is present, finite where it must be, and consistent in shape, and
that shared-prefix results equal whole-prompt results within 1e-4.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _run(script: str, args: list[str], out: Path) -> tuple[str, dict]:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args, "--json", str(out)], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"{script} failed:\nSTDOUT\n{proc.stdout}\nSTDERR\n{proc.stderr[-4000:]}"
    return proc.stdout, json.loads(out.read_text())


def _positive(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


@pytest.fixture()
def bench_path(monkeypatch):
    """Import the scripts as modules (they import their sibling `benchlib`)."""
    monkeypatch.syspath_prepend(str(BENCH))


# ------------------------------------------------------------------------------------------------ capture.py

@pytest.fixture(scope="module")
def capture_run(tiny_dir, tmp_path_factory):
    return _run("capture.py", ["--quick", "--model", str(tiny_dir)], tmp_path_factory.mktemp("bench") / "c.json")


def test_capture_prints_every_figure(capture_run):
    stdout, _ = capture_run
    printed = ["date ", "load average", "1. Capture throughput vs plain HF forward", "hf_forward", "hf_pristine",
               "hf_forward_keep1", "bridge_forward", "bridge_hooks", "capture_unshared", "capture throughput ratio:",
               "2. fp32 vs bf16", "speed ratio bf16/fp32:", "judged_mean", "readout (cloze log-odds)",
               "3. Cold vs cached capture()", "cold/cached speedup:", "tokens_shared_prefix", "4. Peak memory",
               "peak RSS during capture:", "cache on disk:", "CUDA"]
    assert not [s for s in printed if s not in stdout], stdout


def test_capture_json(capture_run):
    _, res = capture_run
    assert res["config"]["quick"] is True
    t = res["throughput"]
    assert t["baseline"] == "hf_forward" and 0 < t["tokens"] <= t["padded_tokens"]
    assert set(t["variants"]) == {"hf_forward", "hf_pristine", "hf_forward_keep1", "bridge_forward", "bridge_hooks",
                                  "capture_unshared", "capture"}
    for v in t["variants"].values():
        assert _positive(v["tokens_per_s_median"]) and v["ratio_min"] <= v["ratio_to_baseline"] <= v["ratio_max"]
    assert t["variants"]["hf_forward"]["ratio_to_baseline"] == pytest.approx(1.0)
    d = res["dtype"]
    assert _positive(d["speed_ratio_bf16_over_fp32"]) and set(d["tokens_per_s_median"]) == {"float32", "bfloat16"}
    assert set(d["activations_rel_diff"]) == {"last", "judged_mean"}
    for a in d["activations_rel_diff"].values():
        assert 0 < a["median"] <= a["max"] < 1  # bf16 rounding: nonzero, well under 100 %
        assert len(a["per_layer_median"]) == 4  # tiny model: 3 layers + embedding
    c = res["cache"]
    assert set(c["seconds_median"]) == {"cold", "cached", "cached_plus_read"}
    assert _positive(c["speedup_cold_over_cached"])
    mem = res["memory"]
    assert all(_positive(mem[k]) for k in ("rss_after_load_mb", "peak_rss_during_capture_mb", "cache_disk_mb"))
    assert mem["capture_self_checks_passed"] is True
    assert 0 < mem["manifest"]["tokens_shared_prefix"] < mem["manifest"]["tokens"]


# ------------------------------------------------------------------------------------------------ shared.py

@pytest.fixture(scope="module")
def shared_run(tiny_dir, tmp_path_factory):
    return _run("shared.py", ["--quick", "--model", str(tiny_dir)], tmp_path_factory.mktemp("bench") / "s.json")


def test_shared_prints_ratios(shared_run):
    stdout, _ = shared_run
    for s in ("token ratio unshared/shared:", "wall-time ratio unshared/shared:", "largest difference",
              "2. measure() under an all-layer ablation hook", "within tolerance 0.0001: True"):
        assert s in stdout, stdout


def test_shared_equals_unshared_within_tolerance(shared_run):
    _, res = shared_run
    r, m = res["runner"], res["measure"]
    assert max(r["differences"]["acts_max_rel"], r["differences"]["readout_max_abs"],
               r["differences"]["logprob_max_abs"]) <= 1e-4
    assert max(m["differences"].values()) <= 1e-4
    assert res["within_tolerance"] is True


def test_shared_counts_tokens(shared_run):
    _, res = shared_run
    r = res["runner"]
    assert r["tokens"]["shared"] < r["tokens"]["unshared"]  # 9 templates share each item's prefix
    assert r["tokens_counted_by_runner"] == r["tokens"]  # what Runner.run reports = shared_tokens / sum(lengths)
    assert r["token_ratio_unshared_over_shared"] > 1 and r["n_prefixes"] * 9 == r["n_prompts"]
    for sec in (r, m := res["measure"]):
        s = sec["speedup_unshared_over_shared"]
        assert _positive(s["median"]) and s["min"] <= s["median"] <= s["max"]
    assert set(m["seconds_median"]) == {"shared", "unshared"}


# ------------------------------------------------------------------------------------------------ stages.py

LOG = """\
2026-11-25 10:00:00,000 INFO entangle 0.1.0: model tiny, 72 items in 4 frames
2026-11-25 10:00:02,000 INFO readout: cloze (base model)
2026-11-25 10:00:12,000 INFO run_capture done in 12 s
2026-11-25 10:00:13,000 INFO probe moral: best layer 2, CV accuracy 0.600
2026-11-25 10:00:15,500 INFO run_probes done in 4 s
2026-11-25 10:00:16,000 INFO run_behavioural done in 0 s
2026-11-25 10:00:20,000 INFO 12 candidate directions in 4 s
2026-11-25 10:00:30,000 INFO exact dom@last/L2: moral kept 0.90 (estimated 0.80), loss +0.001
2026-11-25 10:00:31,000 INFO run_causal done in 15 s
2026-11-25 10:00:33,000 INFO report written: /tmp/x/report.html
"""


def test_stage_times_from_a_log(bench_path, tmp_path):
    import stages

    (tmp_path / "run.log").write_text(LOG)
    rows = stages.stage_times(stages.read_log(tmp_path / "run.log"))
    got = {(r.stage, r.step): r.seconds for r in rows}
    assert got[("run_capture", "")] == 12 and got[("run_capture", "readout")] == 2
    assert got[("run_capture", "(rest of the stage)")] == 10
    assert got[("run_probes", "")] == 3.5 and got[("run_behavioural", "")] == 0.5
    assert got[("run_causal", "# candidate directions in # s")] == 4
    assert got[("run_causal", "exact dom@last/L2")] == 10 and got[("run_causal", "(rest of the stage)")] == 1
    assert got[("report", "")] == 2 and got[("total", "")] == 33
    assert [r.logged_seconds for r in rows if r.stage == "run_capture" and not r.step] == [12]
    text = stages.table({"cold": rows, "warm": rows})
    assert "cold s" in text and "warm s" in text and "  exact dom@last/L2" in text


def test_stage_log_errors(bench_path, tmp_path):
    import stages

    (tmp_path / "run.log").write_text("not a log\n")
    with pytest.raises(ValueError, match="no timestamped log lines"):
        stages.read_log(tmp_path / "run.log")
    with pytest.raises(SystemExit):
        stages.parse_args([])


@pytest.fixture(scope="module")
def stages_run(tiny_dir, tmp_path_factory):
    keep = tmp_path_factory.mktemp("stages")
    return _run("stages.py", ["--run", "--quick", "--model", str(tiny_dir), "--keep", str(keep)], keep / "s.json"), keep


def test_stages_cold_and_warm(stages_run):
    (stdout, res), keep = stages_run
    assert set(res["runs"]) == {"cold", "warm"}
    for name in ("cold", "warm"):
        names = [r["stage"] for r in res["runs"][name] if not r["step"]]
        assert names == ["run_capture", "run_probes", "run_behavioural", "run_causal", "report", "total"]
        assert (keep / name / "run.log").exists()
    for s in ("cold s", "warm s", "run_capture", "run_causal", "report", "total wall time: cold"):
        assert s in stdout, stdout


def test_stages_reads_existing_folders(stages_run, tmp_path):
    (_, res), keep = stages_run
    stdout, again = _run("stages.py", ["--run-dir", str(keep / "cold"), "--run-dir", str(keep / "warm")],
                         tmp_path / "again.json")
    assert again["runs"] == res["runs"] and "cold s" in stdout


def test_quick_flags_override_sizes(bench_path):
    import capture
    import shared
    import stages

    assert (capture.parse_args(["--quick", "--frames", "9"]).frames, capture.parse_args([]).batch_size) == (1, 36)
    assert shared.parse_args(["--quick"]).max_batches == 2 and shared.parse_args([]).model == "smollm2-135m"
    assert stages.parse_args(["--run", "--quick"]).frames == 4
