"""Stimuli v2 and the design-rule checker: the shipped v2 set passes every rule, each rule rejects a planted
confound, v1 is reported (not crashed on), and the loader validates the v2 span and layout fields."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from entangle.stimuli import (
    STIMULI_V1,
    STIMULI_V2,
    Item,
    StimulusError,
    StimulusSet,
    load_stimuli,
)
from entangle.stimulus_rules import (
    ANSWER_WORDS,
    RULES,
    RuleViolation,
    check_rules,
    item_lines,
)

BUILD_V2 = STIMULI_V2.parent / "build_stimuli_v2.py"
CHECK_SCRIPT = STIMULI_V1.parent / "check_rules.py"


def _module(path: Path, name: str, monkeypatch):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def v2() -> StimulusSet:
    return load_stimuli(STIMULI_V2)


@pytest.fixture(scope="module")
def v1() -> StimulusSet:
    return load_stimuli(STIMULI_V1)


def _rules(stim: StimulusSet) -> set[str]:
    return {v.rule for v in check_rules(stim)}


# ---------------------------------------------------------------- the shipped v2 set


def test_v2_is_a_full_factorial_of_64_frames_with_spans(v2):
    assert len(v2) == 1152 and len(v2.frames()) == 64
    for it in v2:
        assert all(it.span(s) is not None for s in ("act", "outcome", "violation"))
        assert it.target and it.target in it.span_text("act")
        assert it.span_text("violation") in {"was", "were", "been", "be", "being"}
        assert it.order in ("act_first", "outcome_first")
        assert it.violation_position in ("before_act", "after_act")
        assert (it.judged_start, it.judged_end) == (0, len(it.text))


def test_v2_passes_every_rule(v2):
    assert check_rules(v2) == []


def test_v2_is_counterbalanced(v2):
    frames = {it.frame: it for it in v2}.values()
    assert Counter(it.order for it in frames) == {"act_first": 32, "outcome_first": 32}
    assert Counter(it.violation_position for it in frames) == {"before_act": 32, "after_act": 32}
    cells = Counter((it.violation, it.order, it.violation_position) for it in frames)
    assert len(cells) == 16 and set(cells.values()) == {4}


def test_build_script_reproduces_the_shipped_v2_file(monkeypatch):
    module = _module(BUILD_V2, "build_stimuli_v2", monkeypatch)
    module.check_frames()
    built = module.build()
    expected = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in built)
    assert STIMULI_V2.read_text(encoding="utf-8") == expected


def test_good_and_bad_acts_match_in_smollm2_tokens(monkeypatch):
    module = _module(BUILD_V2, "build_stimuli_v2", monkeypatch)
    counts = module.span_token_counts(module.build(), module.load_tokenizer(), "act", "moral")
    assert module.equal_share(counts) >= 0.8


def test_no_answer_word_in_the_prompts_answer_list():
    from entangle.prompts import CLOZE_TEMPLATES

    answers = {w.strip().lower() for t in CLOZE_TEMPLATES for w in (t.positive, t.negative)}
    assert answers <= ANSWER_WORDS


# ---------------------------------------------------------------- v1 is reported, not crashed on


def test_v1_breaks_the_rules_v2_was_built_for(v1):
    found = check_rules(v1)
    rules = {v.rule for v in found}
    assert {"spans_recorded", "answer_word", "money_outside_outcome", "agent_money_act", "gain_loss_match",
            "neutral_target", "order_balance", "violation_position_balance"} <= rules
    assert not rules & {"moral_only_in_act", "economic_only_in_outcome", "grammatical_only_in_violation"}
    assert sum(v.rule == "gain_loss_match" for v in found) == 27  # frames whose gain and loss are different events
    assert any("'wallet'" in v.message for v in found)
    assert {v.message.split("'")[1] for v in found if v.rule == "answer_word"} == {"cruel", "fair", "nice", "good"}


def test_check_script_exit_status_and_lines(monkeypatch, capsys, tmp_path):
    script = _module(CHECK_SCRIPT, "check_rules_script", monkeypatch)
    assert script.main([str(STIMULI_V2)]) == 0
    assert "passes all" in capsys.readouterr().out
    assert script.main([str(STIMULI_V1)]) == 1
    out = capsys.readouterr().out
    assert f"{STIMULI_V1}:1: [spans_recorded]" in out and "gain_loss_match 27" in out
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    assert script.main([str(bad)]) == 2


def test_item_lines_point_into_the_file(v1):
    lines = item_lines(STIMULI_V1)
    assert lines["f01_m+1_e+1_g1"] == 1 and len(lines) == 864
    v = check_rules(v1, lines)[0]
    assert v.line == lines[v.item_id]
    assert str(v).startswith(f"[{v.rule}] {v.item_id} (line {v.line}): ")
    assert RuleViolation("r", "x", None, "m").format("f.jsonl") == "f.jsonl: [r] x: m"


# ---------------------------------------------------------------- planted confounds


def _shift(item: Item, span: str, new: str) -> Item:
    """The item with the text of one span replaced by new, every later offset moved accordingly."""
    start, end = item.span(span)
    delta = len(new) - (end - start)
    fields = {"text": item.text[:start] + new + item.text[end:], "judged_end": item.judged_end + delta}
    for name in ("act", "outcome", "violation"):
        s, e = item.span(name)
        if name == span:
            fields[f"{name}_end"] = e + delta
        elif s >= end:
            fields[f"{name}_start"], fields[f"{name}_end"] = s + delta, e + delta
    return replace(item, **fields)


def _plant(stim: StimulusSet, frame: str, edit, **level) -> StimulusSet:
    """A copy of the set in which every item of `frame` at the given levels goes through edit(item)."""
    def hit(it: Item) -> bool:
        return it.frame == frame and all(getattr(it, k) == v for k, v in level.items())
    return StimulusSet.from_items([edit(it) if hit(it) else it for it in stim])


F1 = "v2f01_icy_steps"  # act first, violation before the act


def _span_edit(span: str, fn):
    return lambda it: _shift(it, span, fn(it.span_text(span)))


PLANTS = [
    # (rule, levels, edit)
    ("answer_word", {"moral": 0}, _span_edit("act", lambda a: a + " on a nice day")),
    ("answer_word", {"economic": 0}, _span_edit("outcome", lambda o: o.replace("postcard", "good postcard"))),
    ("money_outside_outcome", {"moral": -1}, _span_edit("act", lambda a: "took $20 from his elderly neighbour")),
    ("money_outside_outcome", {"moral": 1}, _span_edit("act", lambda a: a + " and paid for his lunch")),
    ("none_outcome_money", {"economic": 0}, _span_edit("outcome", lambda o: "a refund of $5 arrived for him")),
    ("agent_money_act", {"economic": -1}, _span_edit("outcome", lambda o: o.replace("arrived for him",
                                                                                    "bet at the casino"))),
    ("gain_loss_match", {"economic": -1}, _span_edit("outcome", lambda o: o.replace("$240", "$250"))),
    ("gain_loss_match", {"economic": -1}, _span_edit("outcome", lambda o: "his landlord raised his rent by $240")),
    ("neutral_target", {"moral": 0}, _span_edit("act", lambda a: "read a short book on the front steps")),
    ("act_length", {"moral": 0}, _span_edit("act", lambda a: a + " while humming a song he had heard on the radio")),
    ("moral_only_in_act", {"moral": -1},
     lambda it: replace(it, text=it.text.replace("While the lift", "While the Lift"))),
    ("economic_only_in_outcome", {"economic": 1},
     lambda it: replace(it, text=it.text.replace("that evening", "that morning"))),
    ("grammatical_only_in_violation", {"grammatical": 0}, lambda it: replace(it, text=it.text.replace("Tom", "Tim"))),
    ("grammatical_only_in_violation", {"grammatical": 0, "moral": 1}, _span_edit("violation", lambda w: "are")),
    ("violation_outside_act_outcome", {},
     lambda it: replace(it, violation_start=it.act_start, violation_end=it.act_start + 6)),
]


@pytest.mark.parametrize(("rule", "level", "edit"), PLANTS, ids=[f"{p[0]}-{i}" for i, p in enumerate(PLANTS)])
def test_each_rule_rejects_a_planted_confound(v2, rule, level, edit):
    planted = _plant(v2, F1, edit, **level)
    found = [v for v in check_rules(planted) if v.rule == rule]
    assert found, f"{rule} missed the planted confound"
    assert all(v.item_id.startswith("v2f01_") for v in found)


def test_order_and_position_balance_reject_one_sided_subsets(v2):
    frames = {it.frame: it for it in v2}.values()
    act_first = [it.frame for it in frames if it.order == "act_first"]
    before = [it.frame for it in frames if it.violation_position == "before_act"]
    assert "order_balance" in _rules(v2.subset(act_first))
    assert "violation_position_balance" in _rules(v2.subset(before))
    fewer_perfect = [it.frame for it in frames if it.violation != "perfect_aux_form" or it.order == "act_first"]
    assert "violation_kind_balance" in _rules(v2.subset(fewer_perfect))


def test_missing_spans_are_reported_and_inferred(v2):
    stripped = StimulusSet.from_items([replace(it, act_start=None, act_end=None) for it in v2])
    rules = _rules(stripped)  # inferred act regions drop words the acts share, e.g. a target at the end
    assert "spans_recorded" in rules and rules <= {"spans_recorded", "neutral_target", "act_length"}


def test_every_rule_is_documented():
    readme = (STIMULI_V1.parent.parent / "README.md").read_text(encoding="utf-8")
    for rule in RULES:
        assert f"`{rule}`" in readme, rule


# ---------------------------------------------------------------- loader: the v2 fields


def test_item_span_accessors(v2):
    it = v2.items[0]
    assert it.span_text("act") == "helped his elderly neighbour up the icy steps"
    assert it.span_text("outcome") == "a tax refund of $240 arrived for him"
    assert it.span_text("violation") == "was"
    with pytest.raises(ValueError):
        it.span("context")
    plain = Item("x", "f", 1, 1, 1, "Some text.", 0, 10)
    assert plain.span("act") is None and plain.span_text("outcome") is None


def test_v1_hash_and_columns_do_not_change(v1):
    columns = set(v1.to_frame().columns)
    old = [{k: v for k, v in asdict(it).items() if k in columns} for it in v1]
    payload = json.dumps(old, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert v1.sha256 == hashlib.sha256(payload.encode("utf-8")).hexdigest()
    assert "act_start" not in v1.to_frame().columns


def test_v2_csv_equals_jsonl(v2, tmp_path):
    path = tmp_path / "v2.csv"
    v2.to_frame().to_csv(path, index=False)
    from_csv = load_stimuli(path)
    assert from_csv.items == v2.items and from_csv.sha256 == v2.sha256


def _v2_records() -> list[dict]:
    return [json.loads(line) for line in STIMULI_V2.read_text(encoding="utf-8").splitlines()[:18]]


def _outcome_first_records() -> list[dict]:
    lines = STIMULI_V2.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[8 * 18:9 * 18]]  # frame 9: outcome first, violation before the act


BAD_LAYOUT = [
    # (field, new value or "<drop>", expected error field, message fragment)
    ("act_start", 10_000, "act_start", "outside the text"),
    ("act_end", "<drop>", "act_end", "needs both ends"),
    ("act_start", "x", "act_start", "expected an integer"),
    ("act_start", True, "act_start", "boolean"),
    ("outcome_start", "<act_start>", "outcome_start", "overlaps the act span"),
    ("judged_start", "<after_violation>", "violation_start", "not inside the judged span"),
    ("order", "sideways", "order", "unknown value"),
    ("order", "outcome_first", "order", "starts before the outcome"),
    ("violation_position", "middle", "violation_position", "unknown value"),
    ("violation_position", "after_act", "violation_position", "not there relative to the act"),
    ("target", 5, "target", "expected a string"),
]


@pytest.mark.parametrize(("field", "value", "err_field", "fragment"), BAD_LAYOUT)
def test_bad_layout_field_names_line_and_field(tmp_path, field, value, err_field, fragment):
    records = _v2_records()
    index = 4
    rec = records[index]
    if value == "<drop>":
        del rec[field]
    elif value == "<act_start>":
        rec[field] = rec["act_start"]
    elif value == "<after_violation>":
        rec[field] = rec["violation_end"]
    else:
        rec[field] = value
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    with pytest.raises(StimulusError) as info:
        load_stimuli(path)
    err = info.value
    assert (err.line, err.field) == (index + 1, err_field), str(err)
    assert fragment in err.message and str(err).startswith(f"{path}:{index + 1}: field '{err_field}': ")


def test_outcome_first_layout_loads_and_null_fields_are_absent(tmp_path):
    records = _outcome_first_records()
    for r in records:
        r["target"] = None
        r["order"] = ""
    path = tmp_path / "ok.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    s = load_stimuli(path)
    assert all(it.target == "" and it.order == "" and it.span("outcome")[0] < it.span("act")[0] for it in s)
