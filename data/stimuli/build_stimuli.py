"""Build data/stimuli/factorial.jsonl: 48 frames x moral(3) x economic(3) x grammatical(2) = 864 items.

Run `python data/stimuli/build_stimuli.py`; the output is deterministic (re-running rewrites the file
byte for byte). Every item is one sentence of the shape

    "<context clause with auxiliary>, <Name> <moral act>, and <when> <pronoun> <economic outcome>."

and each factor touches only its own slot:

- moral (+1 good, 0 neutral, -1 bad): the act phrase only; the three acts of a frame share structure,
  length and everyday vocabulary, and no act moves money to or from the agent;
- economic (+1 gain, 0 none, -1 loss): the outcome phrase only; the money comes from luck or an
  accident unrelated to the act (raffle, shares, tax, rent, a burst pipe...), gain and loss of a frame
  have the same amount, amounts differ across frames, and the "none" outcome is a money-free routine;
- grammatical (1 well-formed, 0 violated): one auxiliary in the morally and economically neutral context
  clause, with the same kind of violation at every moral and economic level of the frame.

The asserts at the bottom check the design before anything is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import product
from pathlib import Path

OUT = Path(__file__).resolve().parent / "factorial.jsonl"

# Kinds of grammatical violation: name -> (description, well-formed word, violating word).
VIOLATIONS: dict[str, tuple[str, str, str]] = {
    "agreement_aux_sg": ("singular subject with a plural auxiliary: 'the bus was late' -> 'the bus were late'",
                         "was", "were"),
    "agreement_aux_pl": ("plural subject with a singular auxiliary: 'the roads were wet' -> 'the roads was wet'",
                         "were", "was"),
    "perfect_aux_form": ("bare 'be' for the participle after perfect 'had': 'had been painted' -> 'had be painted'",
                         "been", "be"),
    "progressive_aux_form": ("participle 'been' for 'being' in the progressive passive: 'was being' -> 'was been'",
                             "being", "been"),
}

MORAL_LEVELS = (1, 0, -1)
ECONOMIC_LEVELS = (1, 0, -1)
GRAMMATICAL_LEVELS = (1, 0)


@dataclass(frozen=True)
class Frame:
    """One scenario: context clause (with the manipulated auxiliary), agent, three acts, three outcomes."""

    slug: str
    name: str
    gender: str  # "m" or "f"
    context: str  # contains the well-formed auxiliary of `violation` exactly once
    violation: str
    acts: tuple[str, str, str]  # good, neutral, bad
    when: str
    outcomes: tuple[str, str, str]  # gain, none, loss


F = Frame
FRAMES: tuple[Frame, ...] = (
    F("wallet", "Tom", "m", "While the bus was late", "agreement_aux_sg",
      ("returned a lost wallet to its owner", "put his own wallet in his bag", "hid a lost wallet from its owner"),
      "later", ("won $300 in a raffle", "went for a short walk", "lost $300 on a bet")),
    F("seat", "Anna", "f", "While the roads were wet", "agreement_aux_pl",
      ("gave her seat to an elderly man", "chose a seat next to the door", "pushed an elderly man off his seat"),
      "then", ("got a $450 tax refund", "read a magazine on the sofa", "got a $450 tax bill")),
    F("bags", "Raj", "m", "After the stairs had been cleaned", "perfect_aux_form",
      ("carried a tired neighbour's bags", "carried his own bags upstairs", "kicked a tired neighbour's bags"),
      "then", ("found his rent cut by $200", "cooked pasta for his dinner", "found his rent raised by $200")),
    F("litter", "Maria", "f", "While the fence was being mended", "progressive_aux_form",
      ("picked up litter in the park", "sat on a bench in the park", "dumped her rubbish in the park"),
      "later", ("saw her shares rise by $650", "listened to the radio at home", "saw her shares fall by $650")),
    F("stray_cat", "Leo", "m", "When the shop was closed", "agreement_aux_sg",
      ("fed a hungry stray cat by the door", "photographed a sleeping cat by the door",
       "kicked a hungry stray cat by the door"),
      "then", ("won $500 in the lottery", "went to bed early", "lost $500 at the casino")),
    F("crying_child", "Grace", "f", "When the trains were slow", "agreement_aux_pl",
      ("comforted a crying child on the platform", "read a short book on the platform",
       "mocked a crying child on the platform"),
      "later", ("found $120 in an old coat", "made a pot of tea", "lost $120 through a torn pocket")),
    F("mistake_truth", "Omar", "m", "After the office had been cleaned", "perfect_aux_form",
      ("admitted his mistake to his boss", "showed his notes to his boss", "hid his mistake from his boss"),
      "then", ("won $250 at a quiz night", "watched the news at home", "lost $250 at a card game")),
    F("promise", "Lucy", "f", "As the car was being washed", "progressive_aux_form",
      ("kept her promise to her aunt", "made plans for the weekend", "broke her promise to her aunt"),
      "then", ("had $180 refunded on her phone bill", "took a nap after lunch",
                       "had $180 added to her phone bill")),
    F("cyclist", "Daniel", "m", "When the road was icy", "agreement_aux_sg",
      ("helped a fallen cyclist get up", "watched the cyclists ride past", "laughed at a fallen cyclist"),
      "later", ("gained $350 on the exchange rate", "phoned his cousin for a chat", "lost $350 on the exchange rate")),
    F("gossip", "Nina", "f", "While the phones were quiet", "agreement_aux_pl",
      ("defended a colleague against cruel gossip", "chatted with a colleague about the weather",
       "spread cruel gossip about a colleague"),
      "then", ("had her energy bill cut by $220", "tidied the kitchen before bed",
                    "had her energy bill raised by $220")),
    F("test", "Jack", "m", "Once the desks had been moved", "perfect_aux_form",
      ("helped a classmate revise for the test", "read his notes before the test",
       "copied a classmate's answers in the test"),
      "then", ("won $400 on a scratch card", "had a long hot bath", "wasted $400 on scratch cards")),
    F("blame", "Sofia", "f", "While the kitchen was being tiled", "progressive_aux_form",
      ("took the blame for her error", "took the bus to her office", "blamed a colleague for her error"),
      "later", ("won a $550 prize in a draw", "sorted her books by colour", "paid $550 to fix a burst pipe")),
    F("lost_child", "Ethan", "m", "When the hall was crowded", "agreement_aux_sg",
      ("led a lost child back to her mother", "wheeled his bike back to the shed",
       "led a lost child away from her mother"),
      "then", ("got $270 back on his insurance", "washed his car in the drive", "paid $270 for a car repair")),
    F("queue", "Emma", "f", "When the shops were busy", "agreement_aux_pl",
      ("let a pregnant woman ahead in the queue", "stood behind a tall man in the queue",
       "pushed a pregnant woman out of the queue"),
      "later", ("won $150 in a prize draw", "sent a text to her brother", "lost $150 on a horse race")),
    F("new_pupil", "Paul", "m", "After the hall had been painted", "perfect_aux_form",
      ("stood up for a shy new pupil", "sat behind a tall new pupil", "bullied a shy new pupil"),
      "then", ("saw his shares rise by $750", "fixed a squeaky door hinge", "saw his shares fall by $750")),
    F("secret", "Hannah", "f", "As the road was being resurfaced", "progressive_aux_form",
      ("kept a friend's secret to herself", "put a spare key in the drawer", "told a friend's secret to everyone"),
      "then", ("found her rent cut by $320", "watched a film on television", "found her rent raised by $320")),
    F("plants", "Ali", "m", "While the kettle was boiling", "agreement_aux_sg",
      ("watered the plants of an absent neighbour", "watered the plants on his own balcony",
       "trampled the plants of an absent neighbour"),
      "later", ("won $600 in a raffle", "ironed a few of his shirts", "lost $600 on a bet")),
    F("bus_driver", "Rosa", "f", "While the clouds were low", "agreement_aux_pl",
      ("thanked the bus driver warmly", "walked past the bus driver", "insulted the bus driver loudly"),
      "then", ("got a $380 tax refund", "baked a loaf of bread", "got a $380 tax bill")),
    F("sick_friend", "Mark", "m", "Once the road had been cleared", "perfect_aux_form",
      ("visited a sick friend in hospital", "visited a museum in the city", "ignored a sick friend in hospital"),
      "later", ("won $800 in the lottery", "went for a short jog", "lost $800 at the casino")),
    F("bird", "Julia", "f", "While the boat was being loaded", "progressive_aux_form",
      ("freed a trapped bird from a net", "watched a bird on the fence", "trapped a wild bird in a net"),
      "then", ("found $140 in an old coat", "repotted a plant on her windowsill", "lost $140 through a torn pocket")),
    F("blind_man", "Kevin", "m", "While the traffic was heavy", "agreement_aux_sg",
      ("helped a blind man cross the street", "saw a tall man cross the street", "tripped a blind man in the street"),
      "then", ("won $230 at a quiz night", "played a video game at home", "lost $230 at a card game")),
    F("graffiti", "Laura", "f", "When the streets were empty", "agreement_aux_pl",
      ("cleaned graffiti off the school wall", "walked along the school wall", "sprayed graffiti on the school wall"),
      "later", ("had $190 refunded on her phone bill", "wrote a list for the weekend",
                "had $190 added to her phone bill")),
    F("chess", "Sean", "m", "After the tables had been set", "perfect_aux_form",
      ("played fair in the chess final", "played chess in the park", "cheated in the chess final"),
      "then", ("gained $420 on the exchange rate", "painted a picture of the hills",
                       "lost $420 on the exchange rate")),
    F("lunch", "Mei", "f", "While the heating was being fixed", "progressive_aux_form",
      ("shared her lunch with a hungry pupil", "ate her lunch at her desk", "stole the lunch of a hungry pupil"),
      "later", ("had her energy bill cut by $260", "went to bed quite early", "had her energy bill raised by $260")),
    F("brother_lamp", "Sara", "f", "While the radio was playing", "agreement_aux_sg",
      ("forgave her brother for the broken lamp", "fixed the switch on the old lamp",
       "hit her brother over the broken lamp"),
      "then", ("won $700 on a scratch card", "sorted her socks into pairs", "wasted $700 on scratch cards")),
    F("horse", "David", "m", "When the fields were muddy", "agreement_aux_pl",
      ("brushed the old horse gently", "looked at the old horse", "whipped the old horse hard"),
      "then", ("won a $480 prize in a draw", "read a chapter of a novel", "paid $480 to fix a burst pipe")),
    F("snow", "Amy", "f", "After the power had been restored", "perfect_aux_form",
      ("shovelled snow for her elderly neighbour", "shovelled snow from her own path",
       "threw snow at her elderly neighbour"),
      "later", ("got $330 back on her insurance", "made soup for her lunch", "paid $330 for a car repair")),
    F("credit", "Peter", "m", "As the printer was being fixed", "progressive_aux_form",
      ("gave credit to a junior colleague", "gave a talk to a junior colleague",
       "stole credit from a junior colleague"),
      "then", ("won $170 in a prize draw", "cleaned the windows of his flat", "lost $170 on a horse race")),
    F("hikers", "Kate", "f", "When the sky was grey", "agreement_aux_sg",
      ("warned the hikers about the broken bridge", "told the hikers about the nice view",
       "lied to the hikers about the broken bridge"),
      "later", ("saw her shares rise by $850", "looked at old holiday photos", "saw her shares fall by $850")),
    F("medicine", "Luis", "m", "While the nights were long", "agreement_aux_pl",
      ("brought medicine to his sick grandmother", "brought a book to his reading group",
       "hid the medicine of his sick grandmother"),
      "then", ("found his rent cut by $240", "knitted a scarf in the evenings", "found his rent raised by $240")),
    F("old_man", "Eva", "f", "Once the boxes had been stacked", "perfect_aux_form",
      ("visited a lonely old man", "passed a quiet old man", "mocked a lonely old man"),
      "then", ("won $900 in a raffle", "listened to some old records", "lost $900 on a bet")),
    F("swimmer", "Ivan", "m", "As the beach was being cleaned", "progressive_aux_form",
      ("saved a swimmer from drowning", "watched swimmers in the lake", "left a swimmer to drown"),
      "then", ("got a $560 tax refund", "planted bulbs in a pot", "got a $560 tax bill")),
    F("innocent_boy", "Ella", "f", "When the classroom was noisy", "agreement_aux_sg",
      ("told the truth to clear an innocent boy", "told the class a story about a boy",
       "told lies to blame an innocent boy"),
      "later", ("won $640 in the lottery", "folded the laundry after dinner", "lost $640 at the casino")),
    F("homework", "Hugo", "m", "While the leaves were falling", "agreement_aux_pl",
      ("helped his little brother with his homework", "did his own homework at the table",
       "tore up his little brother's homework"),
      "then", ("found $160 in an old coat", "did a jigsaw puzzle at home", "lost $160 through a torn pocket")),
    F("door", "Ruth", "f", "After the roof had been repaired", "perfect_aux_form",
      ("held the door for a limping man", "locked the door of her flat", "slammed the door on a limping man"),
      "then", ("won $210 at a quiz night", "wrote a letter to her aunt", "lost $210 at a card game")),
    F("river", "Noah", "m", "While the bridge was being painted", "progressive_aux_form",
      ("cleared rubbish from the river", "sketched the boats on the river", "poured oil into the river"),
      "later", ("had $280 refunded on his phone bill", "baked some biscuits for tea",
                "had $280 added to his phone bill")),
    F("fight", "Priya", "f", "While the train was delayed", "agreement_aux_sg",
      ("broke up a fight between two boys", "watched a game between two teams", "started a fight between two boys"),
      "then", ("gained $460 on the exchange rate", "cleaned out her kitchen cupboards",
                       "lost $460 on the exchange rate")),
    F("patient", "Adam", "m", "When the wards were quiet", "agreement_aux_pl",
      ("sat with a frightened patient all night", "sat with a good novel all night",
       "shouted at a frightened patient all night"),
      "then", ("had his energy bill cut by $310", "learned a new song on guitar",
                    "had his energy bill raised by $310")),
    F("directions", "Alice", "f", "Once the bridge had been reopened", "perfect_aux_form",
      ("gave a lost tourist clear directions", "checked the map for directions",
       "gave a lost tourist false directions"),
      "later", ("won $720 on a scratch card", "went for a walk by the canal", "wasted $720 on scratch cards")),
    F("umbrella", "Felix", "m", "As the bins were being emptied", "progressive_aux_form",
      ("shared his umbrella with a stranger", "opened his umbrella in the rain",
       "jabbed a stranger with his umbrella"),
      "then", ("won a $390 prize in a draw", "wrote in his diary before bed", "paid $390 to fix a burst pipe")),
    F("injured_hiker", "Jane", "f", "When the path was steep", "agreement_aux_sg",
      ("called for help for an injured hiker", "called her brother about the long hike",
       "left an injured hiker on the trail"),
      "then", ("got $290 back on her insurance", "trimmed the hedge in her garden",
                       "paid $290 for a car repair")),
    F("kitten", "Marco", "m", "When the skies were dark", "agreement_aux_pl",
      ("sheltered a frightened kitten from the storm", "brought the washing in before the storm",
       "threw a frightened kitten out into the storm"),
      "later", ("won $130 in a prize draw", "drank a cup of cocoa", "lost $130 on a horse race")),
    F("window", "Lena", "f", "After the floor had been swept", "perfect_aux_form",
      ("owned up to breaking the window", "looked out of the window", "blamed her sister for breaking the window"),
      "then", ("saw her shares rise by $580", "fixed a wobbly chair leg", "saw her shares fall by $580")),
    F("neighbours", "Victor", "m", "While the piano was being tuned", "progressive_aux_form",
      ("welcomed the new neighbours with a smile", "watched the new neighbours move in",
       "insulted the new neighbours with a sneer"),
      "then", ("found his rent cut by $340", "played chess with his sister", "found his rent raised by $340")),
    F("ill_father", "Helen", "f", "When the house was cold", "agreement_aux_sg",
      ("cared for her ill father at home", "cooked dinner for herself at home", "neglected her ill father at home"),
      "later", ("won $680 in a raffle", "read the paper after dinner", "lost $680 on a bet")),
    F("struggling_pupil", "Oscar", "m", "When the days were short", "agreement_aux_pl",
      ("praised a struggling pupil in class", "wiped the board clean in class",
       "humiliated a struggling pupil in class"),
      "then", ("got a $520 tax refund", "sewed a button on his coat", "got a $520 tax bill")),
    F("ambulance", "Clara", "f", "Once the signs had been replaced", "perfect_aux_form",
      ("made room for an ambulance in traffic", "changed lanes at the lights in traffic",
       "blocked an ambulance on purpose in traffic"),
      "then", ("won $880 in the lottery", "took a walk along the river", "lost $880 at the casino")),
    F("bike", "Owen", "m", "While the street was being swept", "progressive_aux_form",
      ("fixed his friend's flat tyre", "pumped up his own tyres", "slashed his friend's bike tyres"),
      "later", ("found $110 in an old coat", "went to bed after midnight", "lost $110 through a torn pocket")),
)


def _sign(v: int) -> str:
    """'+1', '0' or '-1': the level as it appears in item ids."""
    return f"{v:+d}" if v else "0"


def _context(frame: Frame, grammatical: int) -> str:
    """The context clause, with the auxiliary swapped for its violating form when grammatical == 0."""
    _, ok, bad = VIOLATIONS[frame.violation]
    if grammatical:
        return frame.context
    return re.sub(rf"\b{ok}\b", bad, frame.context, count=1)


def render(frame: Frame, moral: int, economic: int, grammatical: int) -> str:
    """The item text for one cell of a frame."""
    act = frame.acts[MORAL_LEVELS.index(moral)]
    outcome = frame.outcomes[ECONOMIC_LEVELS.index(economic)]
    pronoun = "he" if frame.gender == "m" else "she"
    return f"{_context(frame, grammatical)}, {frame.name} {act}, and {frame.when} {pronoun} {outcome}."


def build() -> list[dict]:
    """All 864 items as ordered dicts in the JSONL schema."""
    rows = []
    for n, frame in enumerate(FRAMES, start=1):
        frame_id = f"f{n:02d}_{frame.slug}"
        for m, e, g in product(MORAL_LEVELS, ECONOMIC_LEVELS, GRAMMATICAL_LEVELS):
            text = render(frame, m, e, g)
            rows.append({
                "id": f"f{n:02d}_m{_sign(m)}_e{_sign(e)}_g{g}",
                "frame": frame_id,
                "moral": m,
                "economic": e,
                "grammatical": g,
                "text": text,
                "judged_start": 0,
                "judged_end": len(text),
                "violation": frame.violation,
            })
    return rows


def _diff_words(a: str, b: str) -> tuple[list[str], list[str]]:
    """The differing middle word runs of a and b once their common leading and trailing words are removed."""
    wa, wb = a.split(), b.split()
    i = 0
    while i < min(len(wa), len(wb)) and wa[i] == wb[i]:
        i += 1
    j = 0
    while j < min(len(wa), len(wb)) - i and wa[len(wa) - 1 - j] == wb[len(wb) - 1 - j]:
        j += 1
    return wa[i:len(wa) - j], wb[i:len(wb) - j]


def _within(run: list[str], phrase: str) -> bool:
    """Whether a run of words lies inside a phrase (punctuation attached to the phrase's last word allowed)."""
    words = phrase.split()
    run = [w.rstrip(",.") for w in run]
    return any(words[k:k + len(run)] == run for k in range(len(words) - len(run) + 1))


def check(rows: list[dict]) -> None:
    """Assert the design: full factorial, one-word grammatical contrasts, moral/economic contrasts in their slot."""
    assert len(FRAMES) == 48, len(FRAMES)
    assert len(rows) == 48 * 3 * 3 * 2
    assert len({r["id"] for r in rows}) == len(rows), "duplicate ids"
    assert len({f.slug for f in FRAMES}) == len(FRAMES), "duplicate frame slugs"
    assert len({f.name for f in FRAMES}) == len(FRAMES), "names repeat across frames"
    acts = [a for f in FRAMES for a in f.acts]
    assert len(set(acts)) == len(acts), "an act is shared between frames"
    amounts = [re.findall(r"\$\d+", f.outcomes[0]) for f in FRAMES]
    assert all(len(a) == 1 for a in amounts), "each gain names exactly one amount"
    assert len({a[0] for a in amounts}) == len(FRAMES), "amounts repeat across frames"
    for kind in VIOLATIONS:
        frames = [f for f in FRAMES if f.violation == kind]
        assert len(frames) == 12, (kind, len(frames))
        assert sum(f.gender == "f" for f in frames) == 6, f"{kind}: genders not balanced"
    for f in FRAMES:
        _, ok, bad = VIOLATIONS[f.violation]
        assert f.context.split().count(ok) == 1, (f.slug, "auxiliary must occur once in the context")
        gain, none, loss = f.outcomes
        assert re.findall(r"\$\d+", gain) == re.findall(r"\$\d+", loss), (f.slug, "gain and loss amounts differ")
        assert "$" not in none, (f.slug, "the 'none' outcome mentions money")
        assert not any("$" in a for a in f.acts), (f.slug, "an act mentions money")
        lengths = [len(a.split()) for a in f.acts]
        assert max(lengths) - min(lengths) <= 2, (f.slug, "acts not matched in length", lengths)
    by_cell = {(r["frame"], r["moral"], r["economic"], r["grammatical"]): r for r in rows}
    for n, f in enumerate(FRAMES, start=1):
        fid = f"f{n:02d}_{f.slug}"
        cells = [k for k in by_cell if k[0] == fid]
        assert len(cells) == 18, (fid, len(cells))
        _, ok, bad = VIOLATIONS[f.violation]
        for m, e, g in product(MORAL_LEVELS, ECONOMIC_LEVELS, GRAMMATICAL_LEVELS):
            text = by_cell[fid, m, e, g]["text"]
            assert len(text.split()) <= 24, (fid, "item too long", text)
            # grammatical: exactly the auxiliary differs, the same swap at every moral/economic level
            if g == 1:
                da, db = _diff_words(text, by_cell[fid, m, e, 0]["text"])
                assert (da, db) == ([ok], [bad]), (fid, m, e, da, db)
            # moral: only words of the act phrase differ
            for m2 in MORAL_LEVELS:
                if m2 != m:
                    da, db = _diff_words(text, by_cell[fid, m2, e, g]["text"])
                    assert _within(da, f.acts[MORAL_LEVELS.index(m)]), (fid, m, m2, da)
                    assert _within(db, f.acts[MORAL_LEVELS.index(m2)]), (fid, m, m2, db)
            # economic: only words of the outcome phrase differ
            for e2 in ECONOMIC_LEVELS:
                if e2 != e:
                    da, db = _diff_words(text, by_cell[fid, m, e2, g]["text"])
                    assert _within(da, f.outcomes[ECONOMIC_LEVELS.index(e)]), (fid, e, e2, da)
                    assert _within(db, f.outcomes[ECONOMIC_LEVELS.index(e2)]), (fid, e, e2, db)


def main() -> None:
    """Build, check and write the stimulus file."""
    rows = build()
    check(rows)
    with OUT.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    longest = max(len(r["text"].split()) for r in rows)
    print(f"wrote {len(rows)} items in {len(FRAMES)} frames to {OUT} (longest item: {longest} words)")


if __name__ == "__main__":
    main()
