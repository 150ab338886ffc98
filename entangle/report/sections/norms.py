"""The human-norms section of the report: who rated, how many, what was excluded and why, reliability per kind,
and EI_human per cell; rebuilt from metrics.json's `norms` block (written from `load_norms(...).to_metrics(ei)`)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from entangle.runfolder import RunFolder, RunFolderError
from entangle.schema import KINDS

TITLE = "Human norms"
REQUIRED = ("source", "simulated", "participants", "participants_kept", "ratings", "per_kind", "exclusions",
            "reliability")
REASONS = {"failed_checks": "failed an attention check", "too_fast": "answered too fast",
           "constant": "gave the same rating to every item"}


def present(metrics: dict[str, Any]) -> bool:
    """True when the run imported human ratings (the design norm leaves no `norms` block)."""
    return isinstance(metrics.get("norms"), dict)


def _num(x: Any, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _interval(d: dict[str, Any], key: str) -> str:
    return f"{_num(d.get(key))} [{_num(d.get('ci_low'))}, {_num(d.get('ci_high'))}]"


def _table(head: list[str], rows: list[list[str]]) -> str:
    """An HTML table; every cell is escaped here."""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='norms'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def render(folder: RunFolder, metrics: dict[str, Any]) -> str:
    """HTML fragment for metrics['norms']; a malformed block raises RunFolderError naming the missing key."""
    n = metrics["norms"]
    for key in REQUIRED:
        if key not in n:
            raise RunFolderError(folder.path / "metrics.json", None, f"norms.{key}", "missing")
    ex = n["exclusions"]
    parts = []
    if n["simulated"]:
        parts.append("<p class='caveat'><strong>Simulated ratings.</strong> This file was written by "
                     "<code>entangle survey simulate</code> for tests and demos; it is not a human norm and no "
                     "conclusion about people may be drawn from it.</p>")
    dropped = ex.get("trials_dropped", {})
    reasons = ", ".join(f"{v} {REASONS.get(k, k)}" for k, v in ex.get("participants_by_reason", {}).items() if v)
    rules = ex.get("rules", {})
    parts.append(
        f"<p>Ratings from <code>{escape(str(n['source']))}</code>: {int(n['participants'])} participants, of whom "
        f"{int(n['participants_kept'])} are kept ({escape(reasons) or 'none excluded'}); {int(n['ratings'])} item "
        f"ratings enter the norms ({int(dropped.get('participant_excluded', 0))} dropped with excluded participants, "
        f"{int(dropped.get('too_fast', 0))} single responses faster than {escape(_num(rules.get('min_rt_ms'), 0))} ms). "
        f"{int(ex.get('n_checks_failed', 0))} of {int(ex.get('n_checks', 0))} attention checks failed. Each "
        f"participant rated one kind only (between participants).</p>")
    parts.append(f"<p>Exclusion rules: more than {escape(str(rules.get('max_failed_checks')))} failed attention "
                 f"checks; more than {escape(_num(100 * rules.get('max_fast_share', math.nan), 0))}% of responses "
                 f"faster than {escape(_num(rules.get('min_rt_ms'), 0))} ms; the same rating on all of at least "
                 f"{escape(str(rules.get('constant_min_items')))} items.</p>")
    rel, per_kind = n["reliability"], n["per_kind"]
    rows = []
    for k in KINDS:
        pk, r = per_kind.get(k, {}), rel.get(k, {})
        rows.append([k, str(pk.get("raters", 0)), str(pk.get("ratings", 0)), str(pk.get("items", 0)),
                     _num(pk.get("raters_per_item"), 1), _interval(r, "alpha")])
    parts.append("<h3>Who rated and how reliably</h3>")
    parts.append(_table(["kind", "raters", "ratings", "items", "raters per item", "Krippendorff's α [95% CI]"], rows))
    parts.append("<p class='caption'>α: interval-level Krippendorff's alpha over raters × items of each kind; the "
                 "interval is a bootstrap over items. α near 1: raters agree; near 0: no more than chance.</p>")
    ei = n.get("ei_human")
    if isinstance(ei, dict) and isinstance(ei.get("cells"), dict):
        cells = [[name.replace("_to_", " → "), _interval(c, "ei")] for name, c in ei["cells"].items()]
        parts.append("<h3>EI<sub>human</sub></h3>")
        parts.append(_table(["cell (factor → judgement)", "EI_human [95% CI]"], cells))
        parts.append(f"<p class='caption'>Computed like the model's behavioural EI from the item means, intervals "
                     f"from {escape(str(ei.get('n_boot')))} resamples over {escape(str(ei.get('resampling_unit')))}. "
                     "The excess entanglement of the model is measured against these values.</p>")
    return "\n".join(parts)
