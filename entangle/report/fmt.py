"""Numbers as the report prints them: estimates, percentages, 95% intervals, p-values and layer lists.

Every formatter takes a number or None (not measured) and prints "n/a" for None, with a true minus sign, so the
page, the verdicts and `compare` print a figure the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def finite(x: float | None) -> float | None:
    """`x` when it is a finite number, else None."""
    return x if x is not None and math.isfinite(x) else None


def num(x: float | None, nd: int = 2, sign: bool = False) -> str:
    """`x` to `nd` decimals (with its sign when `sign`), or "n/a"."""
    v = finite(x)
    if v is None:
        return "n/a"
    return (f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}").replace("-", "−")


def pct(x: float | None) -> str:
    """A fraction as a whole percentage, or "n/a"."""
    v = finite(x)
    return "n/a" if v is None else f"{100 * v:.0f}%".replace("-", "−")


def ci(lo: float | None, hi: float | None, nd: int = 2, sign: bool = False, as_pct: bool = False) -> str:
    """ "95% CI lo to hi", or "CI n/a" when either end is unknown."""
    if finite(lo) is None or finite(hi) is None:
        return "CI n/a"
    if as_pct:
        return f"95% CI {pct(lo)} to {pct(hi)}"
    return f"95% CI {num(lo, nd, sign)} to {num(hi, nd, sign)}"


def est(x: float | None, lo: float | None, hi: float | None, nd: int = 2, sign: bool = False) -> str:
    """ "x [lo, hi]": an estimate with its interval in brackets."""
    return f"{num(x, nd, sign)} [{num(lo, nd, sign)}, {num(hi, nd, sign)}]"


def est_pct(x: float | None, lo: float | None, hi: float | None) -> str:
    """ "x% [lo%, hi%]"."""
    return f"{pct(x)} [{pct(lo)}, {pct(hi)}]"


def p_value(x: float | None) -> str:
    """ "p = 0.012", "p < 0.001" or "p n/a"."""
    v = finite(x)
    if v is None:
        return "p n/a"
    return "p < 0.001" if v < 0.001 else f"p = {v:.3f}"


def excludes_zero(lo: float | None, hi: float | None) -> int:
    """+1 if the interval lies above 0, −1 if below, 0 if it includes 0 or is unknown."""
    lo, hi = finite(lo), finite(hi)
    if lo is None or hi is None:
        return 0
    return 1 if lo > 0 else -1 if hi < 0 else 0


def cell_label(cell: str) -> str:
    """`moral_to_grammatical` -> `moral→grammatical`."""
    return cell.replace("_to_", "→")


def layers(ls: Sequence[int] | str | None) -> str:
    """ "layer 14", "layers 12–16", "layers 0, 3, 7" (a string, e.g. "0-30", is printed as it is)."""
    if isinstance(ls, str):
        return f"layers {ls}"
    ls = sorted(ls or ())
    if not ls:
        return "no layers"
    if len(ls) == 1:
        return f"layer {ls[0]}"
    if ls == list(range(ls[0], ls[-1] + 1)):
        return f"layers {ls[0]}–{ls[-1]}"
    return "layers " + ", ".join(map(str, ls))
