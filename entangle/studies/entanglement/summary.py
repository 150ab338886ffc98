"""The headline of a finished entanglement run in a few lines (printed by `entangle run` and the probes/ scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from entangle.runfolder import RunFolder

TARGETS = ("grammatical", "economic")


def summary_lines(run_dir: str | Path) -> list[str]:
    """The headline figures of a finished run, one line each (printed by `entangle run`); n/a where not measured."""
    m = RunFolder(run_dir).metrics()

    def ci(d: dict[str, Any], key: str = "ci_low", key2: str = "ci_high", est: str | None = None) -> str:
        val = d.get(est) if est else None
        lo, hi = d.get(key), d.get(key2)
        num = "n/a" if val is None else f"{val:.3f} "
        return num + ("" if lo is None or hi is None else f"[{lo:.3f}, {hi:.3f}]")

    lines = [f"readout: {m.get('readout', {}).get('style', 'n/a')}"]
    for kind, p in m.get("probe", {}).items():
        lo, hi = p.get("ci", [None, None])
        lines.append(f"probe {kind}: best layer {p.get('best_layer')}, CV accuracy "
                     f"{ci({'a': p.get('cv_accuracy'), 'lo': lo, 'hi': hi}, 'lo', 'hi', 'a')}")
    ent = m.get("entanglement", {})
    style = m.get("readout", {}).get("style")
    for k in TARGETS:
        c = ent.get("behavioural", {}).get(style, {}).get(f"moral_to_{k}")
        if c:
            lines.append(f"EI(moral -> {k}) = {ci(c, est='ei')} ({'valid' if c.get('valid') else 'invalid cell'}), "
                         f"raw b_m {c.get('b_from', float('nan')):.3f}")
    pc = ent.get("positive_control")
    if pc:
        lines.append(f"positive control: {pc['method']}@{pc['position']}/L{pc['layer']} keeps "
                     f"{ci(pc, est='moral_effect_kept')} of the moral effect on held-out frames -> "
                     f"{'passed' if pc['passed'] else 'failed'} (threshold {pc['threshold']})")
    abl = m.get("ablation", {})
    a = abl.get(abl.get("primary", ""), {})
    if a:
        if a.get("tested"):
            null = a.get("null", {}).get("variance_matched", {})
            lines.append(f"repair on valid cells: {ci(a, est='repair_fraction')}, variance-matched null "
                         f"p = {null.get('p_value')} (resolution {null.get('p_resolution')})")
        else:
            lines.append(f"repair untested: {a.get('reason')}")
    for name in ("valueflow", "svo", "tradeoffs", "norms"):
        if name in m:
            lines.append(f"study {name}: in the report")
    lines.append(f"wall time: {m.get('run', {}).get('wall_seconds', 'n/a')} s")
    return lines
