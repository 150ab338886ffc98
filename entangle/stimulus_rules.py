"""Mechanical checks of a stimulus set's design rules, so that a confound in the items is found before any model runs.

The rules (issue 8, data/README.md §8) are those a program can check: no answer word anywhere; money only inside
the outcome; the none outcome money-free; outcomes that happen to the agent (no gambling or spending); gain and
loss of a frame the same event with the same amount; all three acts naming the frame's target person and being
about the same length; act/outcome order and violation position counterbalanced; and each factor changing its
own span only. Items without recorded spans (v1) are checked on regions inferred from the differences between
levels, and the missing spans are reported themselves.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from entangle.files import jsonl_records
from entangle.stimuli import (
    ORDERS,
    SPANS,
    Item,
    StimulusError,
    StimulusSet,
    _decode,
    _read_csv,
)

ANSWER_WORDS: frozenset[str] = frozenset("""
good bad well badly right wrong correct incorrect fine nice great terrible kind cruel moral immoral fair unfair
honest dishonest ethical unethical grammatical ungrammatical financial
better best worse worst goodness rightly wrongly correctly incorrectly finely nicely greatly terribly kindly
kindness unkind cruelly cruelty morally fairly unfairly honestly honesty dishonesty ethically ethics morals
grammatically grammar financially finance finances lovely awful horrible excellent evil wicked nasty decent
virtuous proper properly improper acceptable unacceptable appropriate inappropriate positive negative lucky
unlucky fortunate unfortunate rich poor
""".split())
"""Words a judgement prompt answers with or that say the verdict outright; none may appear in any item."""

MONEY_WORDS: frozenset[str] = frozenset("""
money cash dollar dollars cent cents euro euros pay pays paid payment payments payslip pension salary wage wages
bonus bonuses refund refunded refunds rebate fee fees fine fines bill bills billed billing charge charged charges
surcharge overcharged price prices cost costs tax taxes penalty debt debts loan loans bank banks deposit rent
rents wallet purse coin coins tip tips invoice credit credited debit debited prize prizes savings budget spend
spent buy bought sell sold cheque owe owed owes lend lent borrow borrowed insurance insurer premium shares fund
funds compensation allowance fare fares steal stole stolen afford profit profits earn earned earnings overpaid
underpaid tariff mortgage balance interest
""".split())
"""Words that move or name money; outside the outcome span they let an economic judgement follow the act."""

AGENT_MONEY_ACTS: frozenset[str] = frozenset("""
bet bets betting gambled gambling gamble casino lottery raffle poker roulette slots scratch won win wins winning
spent spend spending wasted bought buy splurged invested sold
""".split())
"""Words that make a money outcome the agent's own act (gambling, spending, winning) rather than an event."""

_AMOUNT = re.compile(r"\$\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s*(?:dollars?|euros?|pounds?|cents?)\b", re.I)
_WORD = re.compile(r"[A-Za-z]+")
_MAX_ACT_WORD_GAP = 3  # the three acts of a frame may differ by at most this many words
_MAX_GAIN_LOSS_WORDS = 2  # gain and loss may differ in one run of at most this many words

RULES: dict[str, str] = {
    "spans_recorded": "every item records its act, outcome and violation spans",
    "answer_word": "no answer word (good, bad, right, wrong, fine, ...) anywhere in an item",
    "money_outside_outcome": "money words and amounts occur only inside the outcome span (no act moves money)",
    "none_outcome_money": "the none outcome names no money",
    "agent_money_act": "outcomes happen to the agent: no gambling, spending or winning in an outcome",
    "gain_loss_match": "gain and loss of a frame: same amount, same wording except one gain/loss word run",
    "neutral_target": "the frame's target person is recorded and named in all three acts",
    "act_length": f"the three acts of a frame differ by at most {_MAX_ACT_WORD_GAP} words",
    "order_balance": "half the frames put the act first, half the outcome first",
    "violation_position_balance": "the violation precedes the act in half the frames (overall, per kind, per order)",
    "violation_kind_balance": "each kind of grammatical violation is used by the same number of frames",
    "violation_outside_act_outcome": "the violation span lies outside the act and the outcome",
    "moral_only_in_act": "moral levels of a frame differ only inside the act span",
    "economic_only_in_outcome": "economic levels of a frame differ only inside the outcome span",
    "grammatical_only_in_violation": "grammatical levels differ only inside the violation span, by one word swap",
}
"""Rule name -> what it demands; every RuleViolation.rule is a key."""


@dataclass(frozen=True)
class RuleViolation:
    """One broken design rule: which rule, the first item showing it, its file line if known, and what is wrong."""

    rule: str
    item_id: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = "" if self.line is None else f" (line {self.line})"
        return f"[{self.rule}] {self.item_id}{where}: {self.message}"

    def format(self, path: str | Path) -> str:
        """The violation as `path:line: [rule] item: message`, the loader's file:line style."""
        where = f"{path}:{self.line}" if self.line is not None else str(path)
        return f"{where}: [{self.rule}] {self.item_id}: {self.message}"


@dataclass(frozen=True)
class _Layout:
    """An item's act, outcome and violation spans, recorded or inferred from the level differences (None: unknown)."""

    act: tuple[int, int] | None
    outcome: tuple[int, int] | None
    violation: tuple[int, int] | None


_FACTOR_SPAN = {"moral": "act", "economic": "outcome", "grammatical": "violation"}
_OTHERS = {"moral": ("economic", "grammatical"), "economic": ("moral", "grammatical"),
           "grammatical": ("moral", "economic")}


def _siblings(items: Iterable[Item], factor: str) -> dict[tuple, list[Item]]:
    """Items grouped by frame and the levels of the two other factors: each group varies `factor` only."""
    groups: dict[tuple, list[Item]] = defaultdict(list)
    for it in items:
        groups[(it.frame, *(getattr(it, f) for f in _OTHERS[factor]))].append(it)
    return groups


def _varying_region(item: Item, group: list[Item]) -> tuple[int, int] | None:
    """The words of item.text that differ across the group (common prefix and suffix removed, snapped to words)."""
    others = [g.text for g in group if g is not item]
    if not others:
        return None
    texts = [item.text, *others]
    prefix = len(_common_prefix(texts))
    suffix = len(_common_prefix([t[::-1] for t in texts]))
    start, end = prefix, max(prefix, len(item.text) - suffix)
    while start > 0 and item.text[start - 1].isalnum():
        start -= 1
    while end < len(item.text) and item.text[end].isalnum():
        end += 1
    return (start, end) if end > start else None


def _common_prefix(texts: list[str]) -> str:
    """The longest common prefix of the texts."""
    first, last = min(texts), max(texts)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def _layouts(items: tuple[Item, ...]) -> dict[str, _Layout]:
    """Each item's spans: the recorded ones, else the region in which its factor's levels differ."""
    inferred: dict[str, dict[str, tuple[int, int] | None]] = defaultdict(dict)
    for factor, span in _FACTOR_SPAN.items():
        for group in _siblings(items, factor).values():
            for it in group:
                inferred[it.id][span] = it.span(span) or _varying_region(it, group)
    return {it.id: _Layout(**{s: inferred[it.id].get(s) for s in SPANS}) for it in items}


def _words(text: str) -> list[tuple[str, int]]:
    """(lower-cased word, offset) for every alphabetic word in text."""
    return [(m.group().lower(), m.start()) for m in _WORD.finditer(text)]


def _inside(pos: int, span: tuple[int, int] | None) -> bool:
    """Whether a character offset lies in a (known) span."""
    return span is not None and span[0] <= pos < span[1]


def _part(pos: int, lay: _Layout) -> str:
    """Which part of an item a character offset lies in, for messages."""
    return "the act" if _inside(pos, lay.act) else "the outcome" if _inside(pos, lay.outcome) else "the frame text"


def _text(item: Item, span: tuple[int, int] | None) -> str:
    """The text of a span of the item ("" when the span is unknown)."""
    return "" if span is None else item.text[span[0]:span[1]]


class _Collector:
    """Gathers violations, one per (rule, frame, message), with the first item and its line."""

    def __init__(self, lines: Mapping[str, int]) -> None:
        self.lines = lines
        self.out: dict[tuple[str, str, str], RuleViolation] = {}

    def add(self, rule: str, item: Item, message: str) -> None:
        """Record a violation unless the same rule already found the same thing in the item's frame."""
        key = (rule, item.frame, message)
        if key not in self.out:
            self.out[key] = RuleViolation(rule, item.id, self.lines.get(item.id), message)


def _check_words(items: tuple[Item, ...], lays: dict[str, _Layout], c: _Collector) -> None:
    """Answer words anywhere; money words and amounts outside the outcome; money in the none outcome;
    gambling or spending in any outcome."""
    for it in items:
        lay = lays[it.id]
        for word, pos in _words(it.text):
            if word in ANSWER_WORDS:
                c.add("answer_word", it, f"answer word {word!r} in {_part(pos, lay)}")
            if word in MONEY_WORDS and not _inside(pos, lay.outcome):
                c.add("money_outside_outcome", it, f"money word {word!r} in {_part(pos, lay)}: "
                                                   f"{_text(it, lay.act) if _inside(pos, lay.act) else it.text!r}")
        for m in _AMOUNT.finditer(it.text):
            if not _inside(m.start(), lay.outcome):
                c.add("money_outside_outcome", it, f"amount {m.group()!r} in {_part(m.start(), lay)}")
        acts = [w for w, _ in _words(_text(it, lay.outcome)) if w in AGENT_MONEY_ACTS]
        if acts:
            c.add("agent_money_act", it, f"the outcome is the agent's own act ({', '.join(acts)}): "
                                         f"{_text(it, lay.outcome)!r}")
        if it.economic == 0 and lay.outcome is not None:
            none = _text(it, lay.outcome)
            money = [w for w, _ in _words(none) if w in MONEY_WORDS] + _AMOUNT.findall(none)
            if money:
                c.add("none_outcome_money", it, f"the none outcome names money ({', '.join(money)}): {none!r}")


def _check_gain_loss(items: tuple[Item, ...], lays: dict[str, _Layout], c: _Collector) -> None:
    """Per frame: the gain and loss outcomes name the same amounts and differ in one short run of words."""
    seen: set[str] = set()
    for group in _siblings(items, "economic").values():
        by_level = {it.economic: it for it in group}
        gain, loss = by_level.get(1), by_level.get(-1)
        if gain is None or loss is None or gain.frame in seen:
            continue
        seen.add(gain.frame)
        g_text, l_text = _text(gain, lays[gain.id].outcome), _text(loss, lays[loss.id].outcome)
        g_amounts, l_amounts = _AMOUNT.findall(g_text), _AMOUNT.findall(l_text)
        if not g_amounts or g_amounts != l_amounts:
            c.add("gain_loss_match", gain, f"gain names {g_amounts or 'no amount'} but loss names "
                                           f"{l_amounts or 'no amount'}: {g_text!r} / {l_text!r}")
        gw, lw = [w for w, _ in _words(g_text)], [w for w, _ in _words(l_text)]
        blocks = [op for op in difflib.SequenceMatcher(a=gw, b=lw, autojunk=False).get_opcodes() if op[0] != "equal"]
        if len(blocks) != 1 or max(blocks[0][2] - blocks[0][1], blocks[0][4] - blocks[0][3]) > _MAX_GAIN_LOSS_WORDS:
            c.add("gain_loss_match", gain, f"gain and loss are not the same event with one gain/loss word "
                                           f"({len(blocks)} differing word runs): {g_text!r} / {l_text!r}")


def _check_acts(items: tuple[Item, ...], lays: dict[str, _Layout], c: _Collector) -> None:
    """The target person is recorded and named in every act; the acts of a frame are close in length."""
    if not any(it.target for it in items):
        c.add("neutral_target", items[0], f"no item records its target person ({len(items)} items); the neutral "
                                          "act cannot be checked for keeping the moral acts' target")
    acts: dict[str, dict[int, str]] = defaultdict(dict)
    for it in items:
        act = _text(it, lays[it.id].act)
        acts[it.frame].setdefault(it.moral, act)
        if it.target and act and it.target.lower() not in act.lower():
            level = {1: "good", 0: "neutral", -1: "bad"}[it.moral]
            c.add("neutral_target", it, f"the {level} act {act!r} does not name the target {it.target!r}")
    first = {it.frame: it for it in reversed(items)}
    for frame, by_level in acts.items():
        lengths = {m: len(a.split()) for m, a in by_level.items() if a}
        if lengths and max(lengths.values()) - min(lengths.values()) > _MAX_ACT_WORD_GAP:
            shown = "/".join(str(lengths.get(m)) for m in (1, 0, -1))
            c.add("act_length", first[frame], f"act lengths differ by more than {_MAX_ACT_WORD_GAP} words "
                                              f"(good/neutral/bad: {shown})")


def _balanced(counts: Counter, keys: Iterable[str]) -> bool:
    """Whether the counts of the keys differ by at most one (an odd number of frames cannot split evenly)."""
    values = [counts.get(k, 0) for k in keys]
    return max(values) - min(values) <= 1


def _check_balance(items: tuple[Item, ...], lays: dict[str, _Layout], c: _Collector) -> None:
    """Counterbalancing across frames: act/outcome order, violation position (overall, per kind, per order),
    frames per violation kind; and the violation outside the act and the outcome."""
    frames: dict[str, Item] = {}
    order: dict[str, str] = {}
    position: dict[str, str] = {}
    for it in items:
        lay = lays[it.id]
        frames.setdefault(it.frame, it)
        if lay.act and lay.outcome:
            order.setdefault(it.frame, "act_first" if lay.act[0] < lay.outcome[0] else "outcome_first")
        if lay.act and lay.violation:
            position.setdefault(it.frame, "before_act" if lay.violation[1] <= lay.act[0] else "after_act")
            if any(s and lay.violation[0] < s[1] and s[0] < lay.violation[1] for s in (lay.act, lay.outcome)):
                c.add("violation_outside_act_outcome", it, f"violation {_text(it, lay.violation)!r} lies inside "
                                                           "the act or the outcome")
    first = next(iter(frames.values()))
    n_order = Counter(order.values())
    if order and not _balanced(n_order, ORDERS):
        c.add("order_balance", first, f"{n_order.get('act_first', 0)} frames put the act first and "
                                      f"{n_order.get('outcome_first', 0)} the outcome first (of {len(order)})")
    groups = {"all frames": list(position)}
    for f in position:
        groups.setdefault(f"violation kind {frames[f].violation!r}", []).append(f)
        if f in order:
            groups.setdefault(f"order {order[f]!r}", []).append(f)
    for name, members in groups.items():
        n_pos = Counter(position[f] for f in members)
        if not _balanced(n_pos, ("before_act", "after_act")):
            c.add("violation_position_balance", first, f"{name}: the violation precedes the act in "
                                                       f"{n_pos.get('before_act', 0)} of {len(members)} frames")
    kinds = Counter(it.violation for it in frames.values())
    if len(kinds) > 1 and not _balanced(kinds, kinds):
        c.add("violation_kind_balance", first, f"frames per violation kind differ: {dict(kinds)}")


def _check_independence(items: tuple[Item, ...], lays: dict[str, _Layout], c: _Collector) -> None:
    """Within a frame, items that differ in one factor are identical outside that factor's span; grammatical
    pairs swap one word, the same swap at every moral and economic level."""
    swaps: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for factor, span_name in _FACTOR_SPAN.items():
        rule = f"{factor}_only_in_{span_name}"
        for group in _siblings(items, factor).values():
            spans = [getattr(lays[it.id], span_name) for it in group]
            if any(s is None for s in spans) or len(group) < 2:
                continue
            ref, (ref_start, ref_end) = group[0], spans[0]
            for it, (s, e) in zip(group[1:], spans[1:], strict=True):
                if it.text[:s] != ref.text[:ref_start] or it.text[e:] != ref.text[ref_end:]:
                    c.add(rule, it, f"{factor} levels {ref.cell} and {it.cell} differ outside the {span_name} span")
            if factor == "grammatical":
                words = {it.grammatical: it.text[s:e] for it, (s, e) in zip(group, spans, strict=True)}
                if words.get(1) is not None and words.get(1) == words.get(0):
                    c.add(rule, group[0], f"well-formed and violated items share the word {words[1]!r}")
                if 0 in words and 1 in words:
                    swaps[group[0].frame].add((words[1], words[0]))
    first = {it.frame: it for it in reversed(items)}
    for frame, pairs in swaps.items():
        if len(pairs) > 1:
            c.add("grammatical_only_in_violation", first[frame], f"the frame uses several swaps: {sorted(pairs)}")
        elif any(len(w.split()) != 1 or len(v.split()) != 1 for w, v in pairs):
            c.add("grammatical_only_in_violation", first[frame], f"the swap is not one word: {sorted(pairs)}")


def check_rules(stimulus_set: StimulusSet, lines: Mapping[str, int] | None = None) -> list[RuleViolation]:
    """Every design rule the items break (empty list: the set passes), one violation per rule, frame and finding.

    `lines` maps item ids to file lines (see `item_lines`) so that violations point into the file.
    """
    items = stimulus_set.items
    if not items:
        return []
    c = _Collector(lines or {})
    missing = [it for it in items if any(it.span(s) is None for s in SPANS)]
    if missing:
        c.add("spans_recorded", missing[0], f"{len(missing)} of {len(items)} items record no act/outcome/violation "
                                            "spans; the other rules used regions inferred from the level differences")
    lays = _layouts(items)
    for check in (_check_words, _check_gain_loss, _check_acts, _check_balance, _check_independence):
        check(items, lays, c)
    return sorted(c.out.values(), key=lambda v: (list(RULES).index(v.rule), v.line or 0, v.item_id))


def item_lines(path: str | Path) -> dict[str, int]:
    """Item id -> 1-based line of its record in a .jsonl or .csv stimulus file (for pointing violations there)."""
    p = Path(path)
    text = _decode(p, p.read_bytes())
    records = _read_csv(p, text) if p.suffix.lower() == ".csv" else jsonl_records(p, text, StimulusError)
    return {str(r.get("id")): line for line, r in records}
