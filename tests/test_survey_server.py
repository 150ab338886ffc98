"""The study server: security (token, bounded and validated input, escaping), load from 50 parallel participants,
and a SIGKILL mid-study that loses nothing answered before it."""

from __future__ import annotations

import csv
import html
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient
from survey_helpers import POSITION, TOKEN, Participant, Server

from entangle.stimuli import StimulusSet, load_stimuli
from entangle.survey.design import StudyConfig
from entangle.survey.materials import load_materials
from entangle.survey.server import open_study
from entangle.survey.web import create_app


@pytest.fixture()
def client(tmp_path):
    data = json.loads(Path(load_materials().source).read_text(encoding="utf-8"))
    for kind in data["kinds"].values():
        kind["question"] = "<script>alert('q')</script> How good?"
    (tmp_path / "m.json").write_text(json.dumps(data), encoding="utf-8")
    stim = load_stimuli().subset(2)
    two_items = StimulusSet.from_items([next(it for it in stim if it.frame == f) for f in stim.frames()])
    settings = open_study(two_items, load_materials(tmp_path / "m.json"), StudyConfig(1, 2),
                          tmp_path / "s.db", admin_token=TOKEN, completion_url="https://example.org/done?cc={code}")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        yield c


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_admin_and_exports_need_the_token(client):
    for path in ("/admin", "/admin/ratings.csv", "/admin/trials.csv"):
        assert client.get(path).status_code == 403
        assert client.get(path, params={"token": "wrong-token-wrong-token"}).status_code == 403
        assert client.get(path, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    r = client.get("/admin", params={"token": TOKEN})
    assert "Progress per kind" in r.text
    assert r.headers["referrer-policy"] == "no-referrer" and "default-src 'self'" in r.headers["content-security-policy"]


def test_input_is_validated_bounded_and_escaped(client):
    r = client.get("/", params={"PROLIFIC_PID": '"><script>x</script>', "STUDY_ID": "ok_1"})
    assert "<script>x" not in r.text and 'value="ok_1"' in r.text  # a malformed id is dropped, never echoed
    r = client.post("/consent", data={"consent": "yes", "PROLIFIC_PID": "<b>bad</b>", "STUDY_ID": "S1"})
    assert "Instructions" in r.text
    assert "&lt;script&gt;alert(&#39;q&#39;)&lt;/script&gt; How good?" in r.text and "<script>alert" not in r.text
    page = client.post("/instructions")
    pos = POSITION.search(page.text).group(1)
    for bad in ({"position": pos, "rating": "99"}, {"position": pos, "rating": "-3"}, {"position": pos, "rating": "x"},
                {"position": "-1", "rating": "3"}, {"position": pos}):
        assert client.post("/answer", data=bad).status_code == 400
    assert client.post("/answer", data={"position": pos, "rating": "3", "junk": "x" * 5000}).status_code == 400
    assert client.post("/answer", data={"position": pos, "rating": "3", "rt_ms": "1200"}).status_code == 200
    assert client.post("/answer", data={"position": pos, "rating": "6", "rt_ms": "1200"}).status_code == 200  # repeat
    trials = rows(client.get("/admin/trials.csv", params={"token": TOKEN}).text)
    assert [(t["position"], t["rating"], t["prolific_pid"], t["study_id"]) for t in trials] == [(pos, "3", "", "S1")]


def attentive(text: str) -> str:
    """A rating that passes the attention checks (the catch items' known answers, the instructed number), else 4."""
    mats = load_materials()
    for checks in mats.catch.values():
        for c in checks:
            if html.escape(c.text) in text:
                return str(c.min)
    return "2" if "choose 2" in text else "4"


def finish(c: TestClient, rating=attentive):
    c.post("/consent", data={"consent": "yes"})
    page = c.post("/instructions")
    while (m := POSITION.search(page.text)) is not None:
        page = c.post("/answer", data={"position": m.group(1), "rating": rating(page.text)})
    return page


def test_completion_redirect_and_full_study(client):
    page = finish(client, rating=lambda text: "4")  # fails the catch items: does not count toward N
    assert "completion-code" in page.text and "https://example.org/done?cc=" in page.text
    # two items x three kinds, one rater each: three attentive participants (one per kind) fill the study
    for _ in range(3):
        with TestClient(client.app, base_url="http://127.0.0.1") as other:
            assert "completion-code" in finish(other).text
    with TestClient(client.app, base_url="http://127.0.0.1") as late:
        assert "The study is full" in late.post("/consent", data={"consent": "yes"}).text
    assert "did not agree" in client.post("/consent", data={}).text


def expected_rows(people: list[Participant]) -> set[tuple[str, str, str]]:
    return {(p.pid, str(pos), str(r)) for p in people for pos, r in p.answers.items()}


def attempted_rows(people: list[Participant]) -> set[tuple[str, str, str]]:
    return {(p.pid, str(pos), str(r)) for p in people for pos, r in p.attempted.items()}


def test_fifty_parallel_participants_each_answer_exported_once(tmp_path):
    server = Server(tmp_path / "load.db", None, "--raters-per-item", "2").start()
    try:
        people = [Participant(server.url, f"LOAD{i:03d}") for i in range(50)]

        def run(p: Participant) -> str:
            page = p.run(stop_after=6)
            p.answer(page, 5)  # the same answer posted twice (a double click) counts once
            p.client.post("/answer", data={"position": str(max(p.answers)), "rating": "1"})
            return p.run().text

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=50) as pool:
            pages = list(pool.map(run, people, timeout=120))
        elapsed = time.monotonic() - start
        assert all("completion-code" in t for t in pages)
        trials = rows(server.export("trials.csv"))
        got = [(t["prolific_pid"], t["position"], t["rating"]) for t in trials]
        assert len(got) == len(set(got)) == sum(len(p.answers) for p in people) == 50 * 13
        assert set(got) == expected_rows(people)
        ratings = rows(server.export())
        assert len(ratings) == 50 * 11 and len({(r["rater_id"], r["item_id"]) for r in ratings}) == 50 * 11
        assert elapsed < 120
    finally:
        server.stop()


def test_sigkill_mid_study_loses_nothing(tmp_path):
    server = Server(tmp_path / "kill.db").start()
    people = [Participant(server.url, f"KILL{i}") for i in range(6)]
    for p in people:  # consent and instructions first, so every participant exists when the kill comes
        p.begin()

    def answer_until_killed(p: Participant) -> None:
        try:
            p.run()
        except httpx.HTTPError:  # the server died under this participant
            pass

    with ThreadPoolExecutor(max_workers=6) as pool:
        running = [pool.submit(answer_until_killed, p) for p in people]
        deadline = time.monotonic() + 60
        while sum(len(p.answers) for p in people) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.kill()  # SIGKILL while answers are in flight
        for f in running:
            f.result(timeout=60)
    acknowledged, attempted = expected_rows(people), attempted_rows(people)
    assert len(acknowledged) >= 20
    server.start()
    try:
        got = {(t["prolific_pid"], t["position"], t["rating"]) for t in rows(server.export("trials.csv"))}
        assert acknowledged <= got <= attempted  # every acknowledged answer survived; nothing invented
        for p in people:  # same cookies: each resumes at their next open trial and finishes
            assert "completion-code" in p.run().text
        trials = rows(server.export("trials.csv"))
        assert len(trials) == 6 * 13 and len({(t["prolific_pid"], t["position"]) for t in trials}) == 6 * 13
    finally:
        server.stop()
