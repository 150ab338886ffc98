"""A participant in a real browser (Debian's headless Chromium through chromedriver): consent, practice, items with an
attention check, the tab closed mid-way and the study resumed, the completion code; the admin export then holds
exactly the answers given. Screenshots of every page go to the test's tmp folder; with ENTANGLE_UPDATE_SCREENSHOTS=1
the item page is also written to docs/img/survey_item.png for the docs."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import pytest
from survey_helpers import TOKEN, Server

from entangle.survey.materials import load_materials
from entangle.survey.store import Store

pytestmark = pytest.mark.slow
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img" / "survey_item.png"


@pytest.fixture()
def browser(tmp_path):
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    exe, driver_exe = shutil.which("chromium"), shutil.which("chromedriver")
    if not exe or not driver_exe:
        pytest.fail("chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver "
                    "(make browser does this)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = exe
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,760"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_exe), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def expected_answer(sentence: str, question: str) -> int | None:
    """The answer an attention check wants, or None for an ordinary item."""
    mats = load_materials()
    if "choose 2" in question:
        return 2
    for checks in mats.catch.values():
        for c in checks:
            if c.text == sentence:
                return c.min
    return None


def test_participant_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains  # noqa: PLC0415
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    server = Server(tmp_path / "b.db").start()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    d = browser

    def shot(name: str) -> Path:
        path = shots / f"{len(list(shots.iterdir())):02d}_{name}.png"
        assert d.save_screenshot(str(path))
        return path

    def submit(action) -> None:
        form = d.find_element(By.ID, "rating-form")
        action()
        WebDriverWait(d, 10).until(ec.staleness_of(form))

    answers: dict[int, int] = {}
    checks_seen: list[str] = []

    def answer_current(n: int) -> None:
        """Answer the page shown: attention checks as instructed, items alternately by key and by mouse."""
        pos = int(d.find_element(By.ID, "rating-form").get_attribute("data-trial"))
        sentence = d.find_element(By.ID, "sentence").text
        question = d.find_element(By.ID, "question").text
        want = expected_answer(sentence, question)
        rating = want if want is not None else 1 + (3 * n) % 7
        if want is not None:
            checks_seen.append(question if "choose" in question else sentence)
            if len(checks_seen) == 1:
                shot("attention_check")
        answers[pos] = rating
        if n % 2 == 0:
            submit(lambda: ActionChains(d).send_keys(str(rating)).perform())
        else:
            submit(lambda: d.find_element(By.ID, f"rate-{rating}").click())

    try:
        d.get(f"{server.url}/?PROLIFIC_PID=BROWSER01&STUDY_ID=study7&SESSION_ID=sess9")
        assert "Rating sentences" in d.page_source
        shot("consent")
        d.find_element(By.ID, "consent").click()
        d.find_element(By.ID, "start").click()
        WebDriverWait(d, 10).until(ec.presence_of_element_located((By.ID, "begin")))
        shot("instructions")
        d.find_element(By.ID, "begin").click()
        WebDriverWait(d, 10).until(ec.presence_of_element_located((By.ID, "practice-tag")))
        shot("practice")
        n = 0
        while d.find_elements(By.ID, "practice-tag"):
            answer_current(n)
            n += 1
        item = shot("item")
        if os.environ.get("ENTANGLE_UPDATE_SCREENSHOTS") == "1":
            DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item, DOCS_IMG)
        for _ in range(5):
            answer_current(n)
            n += 1
        progress_before = d.find_element(By.CLASS_NAME, "count").text
        next_pos = int(d.find_element(By.ID, "rating-form").get_attribute("data-trial"))

        # close the tab mid-way, come back in a new one with the study link: resume at the same trial
        old = d.current_window_handle
        d.switch_to.new_window("tab")
        new = d.current_window_handle
        d.switch_to.window(old)
        d.close()
        d.switch_to.window(new)
        d.get(f"{server.url}/?PROLIFIC_PID=BROWSER01&STUDY_ID=study7&SESSION_ID=sess9")
        WebDriverWait(d, 10).until(ec.presence_of_element_located((By.ID, "rating-form")))
        shot("resumed")
        assert int(d.find_element(By.ID, "rating-form").get_attribute("data-trial")) == next_pos
        assert d.find_element(By.CLASS_NAME, "count").text == progress_before == f"{len(answers)} of 13"

        while d.find_elements(By.ID, "rating-form"):
            answer_current(n)
            n += 1
        code = d.find_element(By.ID, "completion-code").text
        shot("done")
        assert len(checks_seen) == 3 and len(answers) == 13

        d.get(f"{server.url}/admin?token={TOKEN}")
        assert "1 participants started, 1 finished" in d.find_element(By.TAG_NAME, "main").text
        shot("admin")
        trials = list(csv.DictReader(io.StringIO(server.export("trials.csv"))))
        assert {(int(t["position"]), int(t["rating"])) for t in trials} == set(answers.items())
        assert len(trials) == 13 and {t["prolific_pid"] for t in trials} == {"BROWSER01"}
        assert {t["study_id"] for t in trials} == {"study7"} and {t["session_id"] for t in trials} == {"sess9"}
        assert all(int(t["rt_ms"]) >= 0 for t in trials)
        ratings = list(csv.DictReader(io.StringIO(server.export())))
        assert len(ratings) == 11 and sum(r["trial"] != "item" for r in ratings) == 3
        assert code == Store(tmp_path / "b.db").meta()["completion_code"]
        assert len(list(shots.iterdir())) == 8
    finally:
        server.stop()
