"""Build data/stimuli/v2/factorial_v2.jsonl: 64 frames x moral(3) x economic(3) x grammatical(2) = 1152 items.

Run `python data/stimuli/v2/build_stimuli_v2.py` (add `--tokens` to print the SmolLM2 token-count matching).
The output is deterministic. v2 removes the confounds of v1 (issue 8): every economic outcome is an event
that *happens to* the agent (a refund arrives, a landlord raises the rent), gain and loss of a frame are the
same event with one word swapped and the same amount, the none outcome is a money-free event of similar
length; no act moves money, all three acts of a frame concern the same target person; no answer word
appears anywhere. Order is counterbalanced: half the frames put the outcome before the act, and the
grammatical violation (one auxiliary in a neutral time clause) sits before the act in half the frames and
after it in the other half, crossed with the violation kind and the agent's gender. Every item records the
character spans of its act, outcome and manipulated auxiliary.

The design is checked by `entangle.stimulus_rules.check_rules` (the same checker the tests and
`data/stimuli/check_rules.py` run) before anything is written.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from itertools import product
from pathlib import Path

OUT = Path(__file__).resolve().parent / "factorial_v2.jsonl"

# Kinds of grammatical violation: name -> (well-formed word, violating word); frames cycle through them in order.
VIOLATIONS: dict[str, tuple[str, str]] = {
    "agreement_aux_sg": ("was", "were"),  # singular subject, plural auxiliary: "the lift were broken"
    "agreement_aux_pl": ("were", "was"),  # plural subject, singular auxiliary: "the streets was busy"
    "perfect_aux_form": ("been", "be"),  # bare 'be' after perfect 'had': "the stairs had be cleaned"
    "progressive_aux_form": ("being", "been"),  # 'been' for 'being' in the progressive passive: "was been mended"
}
KIND_CYCLE: tuple[str, ...] = tuple(VIOLATIONS)

MORAL_LEVELS = (1, 0, -1)
ECONOMIC_LEVELS = (1, 0, -1)
GRAMMATICAL_LEVELS = (1, 0)
WHENS: tuple[str, ...] = ("that evening", "the next morning", "on Friday", "that afternoon", "the same day",
                          "on Monday", "that week")


@dataclass(frozen=True)
class Frame:
    """One scenario: agent, target person, neutral time clause, three acts on the target, one money event.

    `outcome` holds `{x}` where the gain or loss word goes and `{obj}` / `{poss}` where the agent is named
    (the agent's name the first time when the outcome comes first, a pronoun otherwise); `none` is the
    money-free event of the same frame.
    """

    slug: str
    name: str
    gender: str  # "m" or "f"
    target: str  # the person the acts concern; occurs in all three acts
    context: str  # neutral time clause holding the frame's auxiliary exactly once
    acts: tuple[str, str, str]  # good, neutral, bad
    outcome: str
    gain: str
    loss: str
    none: str


F = Frame
# Blocks of four frames share the agent's gender (m, f, m, ...); within a block the context clauses follow
# KIND_CYCLE (was, were, had been, being).
FRAMES: tuple[Frame, ...] = (
    F("icy_steps", "Tom", "m", "his elderly neighbour", "while the lift was broken",
      ("helped his elderly neighbour up the icy steps", "passed his elderly neighbour on the front steps",
       "pushed his elderly neighbour on the icy steps"),
      "a tax {x} of $240 arrived for {obj}", "refund", "bill",
      "a postcard from an old school friend arrived for {obj}"),
    F("directions", "Raj", "m", "a lost tourist", "while the streets were busy",
      ("gave clear directions to a lost tourist", "stood in a queue behind a lost tourist",
       "gave false directions to a lost tourist"),
      "{poss} landlord {x} {poss} rent by $120 a month", "lowered", "raised",
      "{poss} landlord fitted a new lock and a chain on the front door"),
    F("nightmare", "Daniel", "m", "his younger sister", "after the dishes had been cleared",
      ("comforted his younger sister after her nightmare", "talked with his younger sister about her timetable",
       "teased his younger sister about her nightmare"),
      "{poss} payslip showed a {x} of $310", "bonus", "deduction", "{poss} manager sent round the new shift rota"),
    F("report", "Omar", "m", "a new colleague", "while the projector was being fixed",
      ("applauded a new colleague's report in the meeting", "discussed a new colleague's report in the meeting",
       "ridiculed a new colleague's report in the meeting"),
      "{poss} shares in a furniture company {x} by $650", "rose", "fell",
      "{poss} old laptop finally finished a long and noisy system update"),
    F("secret", "Anna", "f", "her flatmate", "while the heating was off",
      ("kept the secret her flatmate had told her", "wrote down the recipe her flatmate had told her",
       "spread the secret her flatmate had told her"),
      "{poss} energy supplier {x} {poss} monthly bill by $45", "cut", "raised",
      "{poss} energy supplier sent a leaflet about draught stoppers"),
    F("vase", "Grace", "f", "her grandmother", "while the roads were closed",
      ("told her grandmother the truth about the broken vase", "told her grandmother the story of the blue vase",
       "told her grandmother a lie about the broken vase"),
      "{poss} insurer sent {obj} a {x} of $180", "rebate", "surcharge",
      "{poss} doctor's surgery sent {obj} a booklet of new phone numbers"),
    F("teammate", "Maria", "f", "a shy teammate", "once the pitch had been marked",
      ("encouraged a shy teammate after a missed shot", "passed to a shy teammate after a long run",
       "mocked a shy teammate after a missed shot"),
      "{poss} phone company {x} {obj} $35 for the month", "refunded", "overcharged",
      "{poss} phone company moved {obj} onto a faster network in the area"),
    F("bus_seat", "Lucy", "f", "a pregnant woman", "while the road was being dug up",
      ("offered her seat to a pregnant woman on the bus", "sat across from a pregnant woman on the bus",
       "took the seat from a pregnant woman on the bus"),
      "the council {x} {obj} $90 for a parking permit", "refunded", "billed",
      "the council sent {obj} a map of the new cycle lanes"),
    F("homework", "Leo", "m", "his little brother", "while the kitchen was quiet",
      ("helped his little brother with his maths homework", "sat beside his little brother during his maths homework",
       "ripped up his little brother's maths homework"),
      "{poss} pension fund {x} by $430 in a month", "grew", "fell",
      "{poss} old school announced a reunion for the first week of spring"),
    F("blind_man", "Jack", "m", "a blind man", "while the traffic lights were out",
      ("guided a blind man across the busy road", "stood beside a blind man by the busy road",
       "led a blind man into the busy road"),
      "{poss} water bill came in $60 {x} than the last one", "lower", "higher",
      "{poss} water company sent a note about roadworks on the next street"),
    F("new_job", "Sam", "m", "his cousin Ruth", "after the table had been cleared",
      ("congratulated his cousin Ruth on her new job", "asked his cousin Ruth about her new job",
       "laughed at his cousin Ruth over her new job"),
      "the airline {x} {obj} $210 for the changed flight", "refunded", "billed",
      "the airline emailed {obj} a seat plan for the flight"),
    F("referee", "Ben", "m", "a young referee", "while the pitch was being rolled",
      ("thanked a young referee after the match", "spoke to a young referee after the match",
       "pushed a young referee after the match"),
      "{poss} employer {x} {poss} salary by $300 a month", "raised", "cut",
      "{poss} employer moved {poss} desk to the third floor by the window"),
    F("interview", "Nina", "f", "a nervous student", "while the corridor was empty",
      ("reassured a nervous student before her interview", "chatted with a nervous student before her interview",
       "frightened a nervous student before her interview"),
      "{poss} car insurance premium {x} by $150", "dropped", "rose",
      "{poss} car passed its yearly safety check at the garage"),
    F("exam_alarm", "Sara", "f", "her roommate Jess", "while the shutters were down",
      ("woke her roommate Jess up in time for the exam", "walked with her roommate Jess to the exam",
       "let her roommate Jess sleep through the exam on purpose"),
      "the gym {x} {obj} $55 for the weeks it stayed shut", "refunded", "billed",
      "the gym sent {obj} a new class timetable for the spring term"),
    F("new_girl", "Priya", "f", "the new girl in her class", "once the chairs had been stacked",
      ("included the new girl in her class in the game", "described the new girl in her class to her mother",
       "excluded the new girl in her class from the game"),
      "{poss} landlord {x} {poss} deposit of $500", "returned", "kept",
      "{poss} landlord replaced the boiler in {poss} flat"),
    F("umbrella", "Chloe", "f", "an old man at the bus stop", "while the shelter was being repaired",
      ("shared her umbrella with an old man at the bus stop", "opened her umbrella beside an old man at the bus stop",
       "shook her umbrella at an old man at the bus stop"),
      "{poss} savings in euros {x} $220 in value", "gained", "lost",
      "{poss} cousin in Spain sent a photo of the harbour"),
    F("station", "Marco", "m", "his brother", "as the train was pulling in",
      ("hugged his brother on the platform at the station", "met his brother on the platform at the station",
       "slapped his brother on the platform at the station"),
      "the school {x} {obj} $70 for the cancelled trip", "refunded", "billed",
      "the school sent {obj} a list of dates for next term"),
    F("notes", "Yusuf", "m", "a classmate", "while the lights were dimmed",
      ("shared his notes with a classmate who missed the lecture",
       "compared his notes with a classmate after the lecture",
       "hid his notes from a classmate who missed the lecture"),
      "{poss} broadband provider {x} {poss} contract by $25 a month", "cut", "raised",
      "{poss} broadband provider replaced the router in {poss} hall with a newer model"),
    F("welcome_note", "Ethan", "m", "a new neighbour from Syria", "after the boxes had been unpacked",
      ("left a welcoming note for a new neighbour from Syria", "saw the moving van of a new neighbour from Syria",
       "left a threatening note for a new neighbour from Syria"),
      "{poss} credit card company {x} {obj} $40 in interest", "refunded", "billed",
      "{poss} local library sent {obj} a reminder about a reserved book"),
    F("courier", "Felix", "m", "a delivery driver", "while the hallway was being cleaned",
      ("thanked a delivery driver who arrived in the storm", "signed for a parcel from a delivery driver in the storm",
       "cursed a delivery driver who arrived in the storm"),
      "{poss} mortgage repayments {x} by $140 a month", "fell", "rose",
      "{poss} street got a new bench and two young oak trees"),
    F("intern", "Hannah", "f", "the intern", "while the office was quiet",
      ("covered for the intern after a small mistake", "had lunch with the intern after a long morning",
       "shouted at the intern after a small mistake"),
      "{poss} council tax {x} by $95 a year", "fell", "rose", "{poss} street got new lamps by the school"),
    F("funfair", "Elena", "f", "a little boy at the funfair", "as the stalls were closing",
      ("helped a little boy at the funfair find his parents", "watched a little boy at the funfair ride the carousel",
       "mocked a little boy at the funfair for his tears"),
      "{poss} freelance client {x} {obj} $260 on the invoice", "overpaid", "underpaid",
      "{poss} freelance client sent {obj} a rough sketch of the new logo"),
    F("aunt", "Fatima", "f", "her aunt", "after the garden had been weeded",
      ("kept her promise to visit her aunt", "spoke on the phone with her aunt",
       "broke her promise to visit her aunt"),
      "the utility company {x} {obj} $85 after a meter check", "refunded", "billed",
      "the utility company fitted a new meter in {poss} hall after a check"),
    F("lunch_queue", "Julia", "f", "a younger pupil", "while the playground was being painted",
      ("defended a younger pupil in the lunch queue", "stood behind a younger pupil in the lunch queue",
       "bullied a younger pupil in the lunch queue"),
      "the dentist {x} {obj} $65 for a missed visit", "refunded", "billed",
      "the dentist sent {obj} a card about {poss} next visit"),
    F("phone", "Hugo", "m", "his friend Malik", "while the library was crowded",
      ("forgave his friend Malik for the cracked phone screen",
       "talked to his friend Malik about the cracked phone screen",
       "punched his friend Malik over the cracked phone screen"),
      "the car dealer {x} {obj} $420 on the repair", "refunded", "overcharged",
      "the car dealer sent {obj} a photo of the new engine part"),
    F("coach", "Kwame", "m", "his teammate", "while the floodlights were on",
      ("defended his teammate in front of the coach", "stood with his teammate in front of the coach",
       "blamed his teammate in front of the coach"),
      "the nursery {x} its fees for {poss} son by $110", "cut", "raised",
      "the nursery sent home a large painting of a tiger by {poss} son"),
    F("flat_tyre", "Liam", "m", "his friend Owen", "once the tyres had been pumped",
      ("fixed the flat tyre on his friend Owen's bike", "looked at the tyre on his friend Owen's bike",
       "slashed the tyre on his friend Owen's bike"),
      "{poss} health plan {x} {poss} yearly premium by $230", "lowered", "raised",
      "{poss} health clinic moved to a new building on the far side of the park"),
    F("diary", "Noah", "m", "his sister", "while the attic was being cleared",
      ("handed his sister's diary back to her unopened", "found his sister's diary in a box of books",
       "read his sister's diary aloud to all his friends"),
      "a new company rule {x} {poss} travel allowance by $80", "increased", "reduced",
      "a new company rule changed the opening hours of {poss} office on Fridays"),
    F("pram", "Iris", "f", "a woman with a pram", "while the escalator was broken",
      ("helped a woman with a pram get down the stairs", "walked behind a woman with a pram down the stairs",
       "tripped a woman with a pram on the stairs"),
      "the price cap {x} {poss} heating bills by $130 a year", "cut", "raised",
      "a new radiator and a towel rail arrived for {poss} spare room upstairs"),
    F("plan", "Olivia", "f", "her colleague Raymond", "while the phones were ringing",
      ("named her colleague Raymond as the author of the plan", "sent her colleague Raymond a draft of the plan",
       "passed off her colleague Raymond's plan as her own"),
      "an accounting error {x} {poss} balance by $190", "raised", "lowered",
      "an old friend sent {obj} a long letter from Canada"),
    F("night_nurse", "Keisha", "f", "the night nurse", "after the ward had been cleaned",
      ("thanked the night nurse for all her help", "asked the night nurse for a glass of water",
       "insulted the night nurse for her accent"),
      "the bank {x} the interest on {poss} savings by $50", "raised", "cut",
      "the post office near {poss} house changed its opening hours"),
    F("rumour", "Laura", "f", "her oldest friend", "while the hall was being decorated",
      ("defended her oldest friend against a rumour", "talked with her oldest friend about a film",
       "started a rumour about her oldest friend"),
      "{poss} shares in a bakery chain {x} by $340", "rose", "fell",
      "{poss} neighbours started a book club that meets on Sunday afternoons"),
    F("tide", "Oscar", "m", "a group of tourists", "while the beach was crowded",
      ("warned a group of tourists early about the rising tide",
       "chatted with a group of tourists about the rising tide",
       "deceived a group of tourists about the rising tide"),
      "the city {x} {obj} $155 for a road tax error", "refunded", "billed",
      "the city sent {obj} a leaflet about the new tram line into town"),
    F("snow", "Pavel", "m", "a sick neighbour", "as the snowflakes were falling",
      ("cleared the snow from the path of a sick neighbour", "looked at the snow on the path of a sick neighbour",
       "piled the snow onto the path of a sick neighbour"),
      "the parcel firm {x} {obj} $38 for a late delivery", "refunded", "billed",
      "the parcel firm left {obj} a card about a late delivery"),
    F("waiter", "Rory", "m", "the new waiter", "after the tables had been laid",
      ("helped the new waiter carry the heavy plates", "watched the new waiter carry the heavy plates",
       "pushed the new waiter carrying the heavy plates"),
      "the customs office {x} {obj} $125 on a parcel from abroad", "refunded", "billed",
      "the customs office sent {obj} a short form about a parcel from abroad"),
    F("piano_teacher", "Samir", "m", "his old piano teacher", "while the piano was being tuned",
      ("visited his old piano teacher in the hospital", "ran into his old piano teacher in town",
       "mocked his old piano teacher behind her back"),
      "{poss} sports club {x} its yearly membership by $46", "cut", "raised",
      "{poss} sports club repainted the lines on its courts"),
    F("overslept", "Mei", "f", "her twin brother", "while the house was quiet",
      ("woke her twin brother when he overslept", "rang her twin brother after he overslept",
       "tricked her twin brother into oversleeping"),
      "the heating company {x} {obj} $215 after a meter reading", "refunded", "billed",
      "the heating company checked {poss} boiler and radiators after a meter reading"),
    F("choir", "Nadia", "f", "a nervous singer in her choir", "while the candles were lit",
      ("encouraged a nervous singer in her choir before the solo",
       "stood next to a nervous singer in her choir before the solo",
       "mocked a nervous singer in her choir before the solo"),
      "{poss} employer's pay review {x} {poss} wage by $160 a month", "raised", "lowered",
      "{poss} employer's new rota moved {poss} lunch break to noon on weekdays"),
    F("runner", "Paula", "f", "a slower runner", "once the course had been marked",
      ("paced a slower runner to the finish line", "ran behind a slower runner to the finish line",
       "elbowed a slower runner near the finish line"),
      "{poss} rent for the studio {x} by $91 a month", "dropped", "rose",
      "{poss} studio got a fresh coat of white paint on every wall"),
    F("queue", "Rosa", "f", "an old woman in the queue", "while the checkout was being fixed",
      ("let an old woman in the queue go first", "chatted with an old woman in the queue",
       "shoved an old woman in the queue aside"),
      "the bank {x} {obj} $75 in error", "refunded", "billed", "the post office sent {obj} a card by mistake"),
    F("goalkeeper", "Theo", "m", "the goalkeeper on the other team", "as the match was ending",
      ("helped up the goalkeeper on the other team", "jogged past the goalkeeper on the other team",
       "kicked at the goalkeeper on the other team"),
      "the tax office {x} {obj} $330 after a review", "refunded", "billed",
      "the town hall sent {obj} a notice about a review of bus routes"),
    F("father", "Victor", "m", "his father", "while the dogs were barking",
      ("apologised to his father after the argument", "sat across from his father after the argument",
       "swore at his father after the argument"),
      "{poss} car tax {x} by $61 a year", "fell", "rose", "{poss} car got a new set of tyres"),
    F("experiment", "Will", "m", "his lab partner", "after the equipment had been checked",
      ("salvaged the experiment of his lab partner", "repeated the experiment of his lab partner",
       "sabotaged the experiment of his lab partner"),
      "the interest on {poss} student loan {x} by $135", "fell", "rose",
      "{poss} university moved the date of {poss} graduation"),
    F("wheelchair", "Aaron", "m", "a man in a wheelchair", "while the ramp was being built",
      ("held the door open for a man in a wheelchair", "waited in line behind a man in a wheelchair",
       "slammed the door on a man in a wheelchair"),
      "{poss} home insurer {x} {obj} $270 after the storm", "paid", "charged",
      "a builder came round to look at the tiles on {poss} roof after the storm"),
    F("mrs_patel", "Sofia", "f", "her elderly neighbour Mrs Patel", "while the street was dark",
      ("walked her elderly neighbour Mrs Patel home from the doctor",
       "saw her elderly neighbour Mrs Patel at the doctor",
       "slammed the gate on her elderly neighbour Mrs Patel"),
      "{poss} mobile network {x} {obj} $51 for dropped calls", "refunded", "billed",
      "{poss} mobile network sent {obj} a text about a new mast"),
    F("lesson", "Tara", "f", "a struggling classmate", "while the radiators were on",
      ("explained the lesson again to a struggling classmate", "sat in the lesson beside a struggling classmate",
       "laughed at a struggling classmate in the lesson"),
      "{poss} landlord {x} the service charge by $71", "lowered", "raised",
      "{poss} landlord put new lights in the stairwell"),
    F("nephew", "Uma", "f", "her toddler nephew", "after the toys had been put away",
      ("sang a lullaby to her toddler nephew", "sang along to the radio with her toddler nephew",
       "yelled at her toddler nephew until he cried"),
      "the fee for {poss} parking permit {x} by $41 a month", "fell", "rose",
      "{poss} parking space moved to the lower level"),
    F("cyclist", "Vera", "f", "a cyclist", "while the road was being widened",
      ("stopped her car to let a cyclist pass", "slowed her car behind a cyclist",
       "swerved her car straight towards a cyclist"),
      "the train company {x} {obj} $86 after a ticket error", "refunded", "billed",
      "the train company sent {obj} a timetable after a line closure"),
    F("stammer", "Chris", "m", "a boy with a stammer", "while the class was noisy",
      ("listened to a boy with a stammer", "sat beside a boy with a stammer",
       "mimicked a boy with a stammer"),
      "a tax {x} of $360 came through for {obj}", "refund", "demand",
      "a long letter from an old school friend came through for {obj}"),
    F("cleaner", "Dev", "m", "the new cleaner", "while the floors were drying",
      ("thanked the new cleaner warmly in the corridor", "passed the new cleaner in the corridor",
       "insulted the new cleaner in the corridor"),
      "a {x} of $225 appeared on {poss} pay statement", "bonus", "deduction",
      "a note about a staff picnic appeared on {poss} desk"),
    F("war_stories", "Hassan", "m", "his grandfather", "once the dinner had been served",
      ("listened to his grandfather's war stories", "asked about his grandfather's war stories",
       "laughed at his grandfather's war stories"),
      "{poss} electricity tariff {x} by $36 a month", "dropped", "rose",
      "an electrician moved {poss} electricity meter to the garage wall"),
    F("first_report", "Ivan", "m", "a younger colleague", "while the printer was being repaired",
      ("helped improve a younger colleague's first report", "discussed a younger colleague's first report",
       "sabotaged a younger colleague's first report"),
      "the vet {x} {obj} $96 for the cancelled operation", "refunded", "billed",
      "the vet sent {obj} a reminder about {poss} dog's jabs"),
    F("schoolgirl", "Wendy", "f", "a schoolgirl", "while the traffic was heavy",
      ("walked a schoolgirl across the busy road", "stood near a schoolgirl at the busy road",
       "pushed a schoolgirl into the busy road"),
      "{poss} landlord {x} the rent on {poss} garage by $56", "lowered", "raised",
      "{poss} landlord painted the door of {poss} garage a pale blue"),
    F("uncle", "Yara", "f", "her sick uncle", "while the wards were quiet",
      ("stayed with her sick uncle through the night", "got a text from her sick uncle during the night",
       "hung up on her sick uncle at night"),
      "{poss} car insurer {x} {obj} $145 after a review", "refunded", "billed",
      "{poss} mechanic sent {obj} a note about the brakes on {poss} car"),
    F("speech", "Zoe", "f", "her sister Lena", "after the cake had been cut",
      ("made a touching speech about her sister Lena", "made a short speech about her sister Lena",
       "made a mocking speech about her sister Lena"),
      "{poss} bonds in a wind farm {x} $380 in value", "gained", "lost",
      "{poss} town voted to build a wind farm on the hill"),
    F("study_partner", "Amira", "f", "her study partner", "while the tea was being made",
      ("calmed her study partner's nerves before the exam", "met her study partner at the library before the exam",
       "rattled her study partner's nerves before the exam"),
      "the council {x} {obj} $76 for the bin collection", "refunded", "billed",
      "the council sent {obj} a new bin for garden waste"),
    F("visitor", "Jonah", "m", "a confused visitor", "as the station was filling up",
      ("translated the signs for a confused visitor", "read the signs next to a confused visitor",
       "mocked the accent of a confused visitor"),
      "the builder {x} {obj} $700 on the kitchen job", "refunded", "overcharged",
      "the builder sent {obj} new drawings and plans for the kitchen job"),
    F("teenage_son", "Kenji", "m", "his teenage son", "while the neighbours were away",
      ("praised his teenage son in front of his friends", "joked with his teenage son in front of his friends",
       "mocked his teenage son in front of his friends"),
      "the cost of {poss} phone contract {x} by $18 a month", "fell", "rose",
      "{poss} phone got a new software update overnight"),
    F("dent", "Luca", "m", "his girlfriend", "once the questions had been read out",
      ("told his girlfriend the truth about the dent in her car", "asked his girlfriend about the dent in her car",
       "told his girlfriend a lie about the dent in her car"),
      "the council {x} {obj} $115 after a parking appeal", "refunded", "billed",
      "the council sent {obj} a long letter after a parking appeal"),
    F("apprentice", "Mateo", "m", "his apprentice", "while the van was being loaded",
      ("applauded his apprentice in front of the client", "introduced his apprentice to the client in the hallway",
       "shamed his apprentice in front of the client"),
      "{poss} fuel supplier {x} {obj} $105 after a delivery mix-up", "refunded", "billed",
      "{poss} fuel supplier delivered the heating oil to {poss} house a day earlier than planned"),
    F("widower", "Bella", "f", "a lonely widower on her street", "while the town was asleep",
      ("visited a lonely widower on her street", "nodded to a lonely widower on her street",
       "mocked a lonely widower on her street"),
      "{poss} water company {x} {obj} $48 after a leak check", "refunded", "billed",
      "{poss} water company sent {obj} a leaflet after a leak check"),
    F("assistant", "Carmen", "f", "her new assistant", "while the printers were warming up",
      ("congratulated her new assistant in front of the team", "introduced her new assistant to the rest of the team",
       "humiliated her new assistant in front of the team"),
      "the price of {poss} annual rail pass {x} by $100", "fell", "rose",
      "{poss} local rail line got new trains for the winter"),
    F("glove", "Dina", "f", "a stranger on the train", "after the doors had been closed",
      ("returned a dropped glove to a stranger on the train", "sat opposite a stranger on the train reading a book",
       "filmed a stranger on the train to mock him online"),
      "the opera house {x} {obj} $165 for the cancelled show", "refunded", "billed",
      "the opera house sent {obj} a printed programme for the new season"),
    F("migraine", "Emma", "f", "a colleague with a migraine", "while the carpets were being cleaned",
      ("dimmed the lights for a colleague with a migraine", "sat in the office near a colleague with a migraine",
       "blasted loud music at a colleague with a migraine"),
      "{poss} childcare costs {x} by $205 a month", "fell", "rose",
      "{poss} daughter's nursery planted a vegetable garden by the gate"),
)



@dataclass(frozen=True)
class Layout:
    """Where a frame puts its parts: kind of violation, act or outcome first, violation before or after the act."""

    violation: str
    order: str  # "act_first" | "outcome_first"
    position: str  # "before_act" | "after_act"
    when: str


def layout(n: int) -> Layout:
    """The counterbalanced layout of frame n (0-based).

    Kinds cycle with n; within a kind the i-th frame (i = n // 4, whose agent's gender alternates with i) takes
    its order from bit 1 of i and its violation position from bit 2, so every kind holds each
    gender x order x position combination twice.
    """
    i = n // 4
    return Layout(violation=KIND_CYCLE[n % 4], order=("act_first", "outcome_first")[(i // 2) % 2],
                  position=("before_act", "after_act")[(i // 4) % 2], when=WHENS[n % len(WHENS)])


def _cap(s: str) -> str:
    """s with its first letter upper-cased (a clause that opens the sentence)."""
    return s[:1].upper() + s[1:]


def _outcome(frame: Frame, economic: int, named: bool) -> str:
    """The outcome at one economic level; when named, the agent's first mention is the name, later ones pronouns."""
    text = frame.none if economic == 0 else frame.outcome.replace("{x}", frame.gain if economic > 0 else frame.loss)
    pronoun = {"obj": "him" if frame.gender == "m" else "her", "poss": "his" if frame.gender == "m" else "her"}
    name = {"obj": frame.name, "poss": f"{frame.name}'s"}
    out, first = [], named
    for part in re.split(r"(\{obj\}|\{poss\})", text):
        if part in ("{obj}", "{poss}"):
            out.append((name if first else pronoun)[part[1:-1]])
            first = False
        else:
            out.append(part)
    return "".join(out)


def render(frame: Frame, where: Layout, moral: int, economic: int, grammatical: int) -> dict:
    """One item's text and the character spans of its act, outcome and manipulated auxiliary."""
    ok, bad = VIOLATIONS[where.violation]
    aux = re.search(rf"\b{ok}\b", frame.context)
    context = frame.context if grammatical else frame.context[:aux.start()] + bad + frame.context[aux.end():]
    act = frame.acts[MORAL_LEVELS.index(moral)]
    subject = "he" if frame.gender == "m" else "she"
    outcome_first = where.order == "outcome_first"
    outcome = _outcome(frame, economic, named=outcome_first)
    opening = where.position == "before_act"
    if outcome_first and opening:
        parts = [(_cap(where.when) + ", ", None), (outcome, "outcome"), (", and later, ", None), (context, "context"),
                 (f", {subject} ", None), (act, "act"), (".", None)]
    elif outcome_first:
        parts = [(_cap(where.when) + ", ", None), (outcome, "outcome"), (f", and later {subject} ", None),
                 (act, "act"), (" ", None), (context, "context"), (".", None)]
    elif opening:
        parts = [(_cap(context), "context"), (f", {frame.name} ", None), (act, "act"),
                 (f", and {where.when} ", None), (outcome, "outcome"), (".", None)]
    else:
        parts = [(f"{frame.name} ", None), (act, "act"), (" ", None), (context, "context"),
                 (f", and {where.when} ", None), (outcome, "outcome"), (".", None)]
    text, spans = "", {}
    for piece, tag in parts:
        if tag:
            spans[tag] = (len(text), len(text) + len(piece))
        text += piece
    word = len(ok) if grammatical else len(bad)
    violation_start = spans["context"][0] + aux.start()
    return {"text": text, "act": spans["act"], "outcome": spans["outcome"],
            "violation": (violation_start, violation_start + word)}


def _sign(v: int) -> str:
    """'+1', '0' or '-1': the level as it appears in item ids."""
    return f"{v:+d}" if v else "0"


def build() -> list[dict]:
    """All 1152 items as ordered dicts in the JSONL schema (v1 keys, then the v2 spans and layout)."""
    rows = []
    for n, frame in enumerate(FRAMES):
        where = layout(n)
        for m, e, g in product(MORAL_LEVELS, ECONOMIC_LEVELS, GRAMMATICAL_LEVELS):
            r = render(frame, where, m, e, g)
            rows.append({
                "id": f"v2f{n + 1:02d}_m{_sign(m)}_e{_sign(e)}_g{g}",
                "frame": f"v2f{n + 1:02d}_{frame.slug}",
                "moral": m, "economic": e, "grammatical": g,
                "text": r["text"],
                "judged_start": 0, "judged_end": len(r["text"]),
                "violation": where.violation,
                "act_start": r["act"][0], "act_end": r["act"][1],
                "outcome_start": r["outcome"][0], "outcome_end": r["outcome"][1],
                "violation_start": r["violation"][0], "violation_end": r["violation"][1],
                "order": where.order, "violation_position": where.position,
                "target": frame.target,
            })
    return rows


def check_frames() -> None:
    """Assert what the item checker cannot see: 64 frames, distinct names and slugs, genders alternating by
    block, each context holding its kind's auxiliary exactly once, distinct amounts."""
    assert len(FRAMES) == 64, len(FRAMES)
    assert len({f.slug for f in FRAMES}) == len(FRAMES), "duplicate frame slugs"
    assert len({f.name for f in FRAMES}) == len(FRAMES), "agent names repeat across frames"
    amounts = [re.findall(r"\$\d+", f.outcome) for f in FRAMES]
    assert all(len(a) == 1 for a in amounts), "each outcome names exactly one amount"
    assert len({a[0] for a in amounts}) == len(FRAMES), "amounts repeat across frames"
    for n, f in enumerate(FRAMES):
        named = all(re.search(r"\{(obj|poss)\}", o) for o in (f.outcome, f.none))
        assert named, (f.slug, "every outcome must name the agent")
        assert f.gender == "mf"[(n // 4) % 2], (f.slug, "gender out of the block pattern")
        ok, _ = VIOLATIONS[layout(n).violation]
        assert len(re.findall(rf"\b{ok}\b", f.context)) == 1, (f.slug, f"context needs '{ok}' exactly once")


def load_tokenizer():
    """The embedded SmolLM2-135M tokenizer (the model entangle's demo runs), for the token-count matching."""
    from transformers import AutoTokenizer  # noqa: PLC0415 - only for the token report

    from entangle.models import _gguf_path  # noqa: PLC0415

    g = _gguf_path("smollm2-135m")
    return AutoTokenizer.from_pretrained(str(g.parent), gguf_file=g.name)


def span_token_counts(rows: list[dict], tok, span: str, factor: str) -> dict[tuple[str, int], int]:
    """(frame, level of factor) -> tokens of the item's span, counted in context (tokens overlapping the span),
    with the two other factors at their neutral / well-formed level."""
    fixed = {"moral": 0, "economic": 0, "grammatical": 1}
    out = {}
    for r in rows:
        if all(r[f] == v for f, v in fixed.items() if f != factor):
            enc = tok(r["text"], return_offsets_mapping=True, add_special_tokens=False)
            start, end = r[f"{span}_start"], r[f"{span}_end"]
            out[r["frame"], r[factor]] = sum(1 for a, b in enc["offset_mapping"] if a < end and b > start)
    return out


def equal_share(counts: dict[tuple[str, int], int]) -> float:
    """Share of frames whose +1 and -1 levels have the same token count (aligned positions for patching)."""
    frames = {f for f, _ in counts}
    return sum(counts[f, 1] == counts[f, -1] for f in frames) / len(frames)


def token_report(rows: list[dict]) -> str:
    """Token-count matching of acts (good/neutral/bad) and outcomes (gain/none/loss) under SmolLM2's tokenizer."""
    tok = load_tokenizer()
    lines = []
    for span, factor, labels in (("act", "moral", ("good", "neutral", "bad")),
                                 ("outcome", "economic", ("gain", "none", "loss"))):
        counts = span_token_counts(rows, tok, span, factor)
        lines.append(f"{span}: frames with equal {labels[0]}/{labels[2]} token counts {equal_share(counts):.0%}; mean "
                     + ", ".join(f"{lab} {sum(v for (_, lv), v in counts.items() if lv == level) / len(FRAMES):.2f}"
                                 for level, lab in zip((1, 0, -1), labels, strict=True)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Build, check (frames, then every rule of entangle.stimulus_rules) and write the v2 stimulus file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", action="store_true", help="print the SmolLM2 token-count matching of the acts")
    args = ap.parse_args(argv)
    from entangle.stimuli import StimulusSet, _to_item  # noqa: PLC0415
    from entangle.stimulus_rules import check_rules  # noqa: PLC0415

    check_frames()
    rows = build()
    items = [_to_item(OUT, n, r) for n, r in enumerate(rows, start=1)]
    problems = check_rules(StimulusSet.from_items(items, source=str(OUT)))
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    with OUT.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} items in {len(FRAMES)} frames to {OUT}")
    if args.tokens:
        print(token_report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
