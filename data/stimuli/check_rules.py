"""Check a stimulus file against the design rules of entangle.stimulus_rules; exit 1 when any rule is broken.

Usage: python data/stimuli/check_rules.py <file.jsonl|file.csv>  (default: data/stimuli/v2/factorial_v2.jsonl)

Prints one line per violation (file line, rule, first item, finding) and a count per rule. Exit status: 0 when
the set passes, 1 when a rule is broken, 2 when the file does not load (the loader's file:line: field error).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from entangle.stimuli import STIMULI_V2, StimulusError, load_stimuli
from entangle.stimulus_rules import RULES, check_rules, item_lines


def main(argv: list[str]) -> int:
    """Load the file, run every rule, print the violations and a summary; return the exit status."""
    path = Path(argv[0]) if argv else STIMULI_V2
    try:
        stim = load_stimuli(path)
    except StimulusError as exc:
        print(f"cannot load: {exc}", file=sys.stderr)
        return 2
    violations = check_rules(stim, item_lines(path))
    for v in violations:
        print(v.format(path))
    if not violations:
        print(f"{path}: passes all {len(RULES)} rules ({len(stim)} items, {len(stim.frames())} frames)")
        return 0
    counts = Counter(v.rule for v in violations)
    print(f"{path}: {len(violations)} violations of {len(counts)} of {len(RULES)} rules: "
          + ", ".join(f"{rule} {counts[rule]}" for rule in RULES if rule in counts))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
