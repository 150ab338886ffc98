"""Helpers for the survey tests: a real server in a subprocess on 127.0.0.1, and a scripted HTTP participant."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

TOKEN = "test-admin-token-0123456789"
POSITION = re.compile(r'name="position" value="(\d+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`entangle survey serve` on 12 frames and 8 items per participant, started as a child process (so a test can SIGKILL it)."""

    def __init__(self, db: Path, port: int | None = None, *extra: str) -> None:
        self.db, self.port, self.extra = db, port or free_port(), extra
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> Server:
        cmd = [sys.executable, "-c", "from entangle.cli import app; app()", "survey", "serve", "--port",
               str(self.port), "--db", str(self.db), "--frames", "12", "--items-per-participant", "8",
               "--admin-token", TOKEN, *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stdout.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError("server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def export(self, name: str = "ratings.csv") -> str:
        r = httpx.get(f"{self.url}/admin/{name}", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
        r.raise_for_status()
        return r.text


class Participant:
    """A scripted participant: consent, instructions, then answers until done; remembers what it answered."""

    def __init__(self, url: str, pid: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30.0, follow_redirects=True)
        self.pid = pid
        self.started = False
        self.attempted: dict[int, int] = {}  # posted, acknowledged or not
        self.answers: dict[int, int] = {}  # acknowledged by the server (a 2xx reply)

    def begin(self) -> httpx.Response:
        self.started = True
        self.client.get("/", params={"PROLIFIC_PID": self.pid, "STUDY_ID": "study1", "SESSION_ID": "s-" + self.pid})
        r = self.client.post("/consent", data={"consent": "yes", "PROLIFIC_PID": self.pid, "STUDY_ID": "study1",
                                               "SESSION_ID": "s-" + self.pid})
        return self.client.post("/instructions") if "Instructions" in r.text else r

    def answer(self, page: httpx.Response, rating: int) -> httpx.Response | None:
        """Answer the trial on `page`; None when the page is not a trial."""
        m = POSITION.search(page.text)
        if m is None:
            return None
        pos = int(m.group(1))
        self.attempted[pos] = rating
        r = self.client.post("/answer", data={"position": str(pos), "rating": str(rating), "rt_ms": "2500"})
        r.raise_for_status()
        self.answers[pos] = rating
        return r

    def run(self, rating_of=lambda pos: 1 + pos % 7, stop_after: int | None = None) -> httpx.Response:
        page = self.client.get("/study") if self.started else self.begin()
        while (stop_after is None or len(self.answers) < stop_after) and POSITION.search(page.text):
            page = self.answer(page, rating_of(int(POSITION.search(page.text).group(1))))
        return page
