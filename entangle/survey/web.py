"""The participant and admin web app (Starlette + Jinja2, autoescaped), served by uvicorn.

Participant flow: consent -> instructions -> practice -> items with attention checks -> completion code (and the
configured redirect). A cookie holds the participant's random token; a returning Prolific id resumes too. Admin pages
and exports need the admin token (query `?token=` or `Authorization: Bearer`). Every form is bounded and validated;
every page is sent with a strict Content-Security-Policy and no Referer.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from entangle.stimuli import StimulusSet
from entangle.survey.admin import admin_summary
from entangle.survey.design import StudyConfig
from entangle.survey.export import ratings_table, trials_table
from entangle.survey.materials import SCALE, Materials
from entangle.survey.store import Participant, Store

HERE = Path(__file__).resolve().parent
COOKIE = "entangle_survey"
PROLIFIC_PARAMS = {"PROLIFIC_PID": "prolific_pid", "STUDY_ID": "study_id", "SESSION_ID": "session_id"}
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_RT_MS = 24 * 3600 * 1000
SECONDS_PER_TRIAL = 12  # for the time estimate on the consent page
HEADERS = [(b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
           (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"cache-control", b"no-store")]


@dataclass(frozen=True)
class Settings:
    """What one server instance serves."""

    stimuli: StimulusSet
    materials: Materials
    config: StudyConfig
    db: Path
    admin_token: str
    completion_code: str
    completion_url: str | None = None


class _SecurityHeaders:
    """Add the security headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _clean_id(value: str | None) -> str | None:
    """A Prolific-style id if well formed, else None (anything else is dropped, never stored)."""
    return value if value is not None and _ID.fullmatch(value) else None


def _int(value: Any, lo: int, hi: int) -> int | None:
    """An integer in [lo, hi] from a form field, else None."""
    if not isinstance(value, str) or not value.isdigit() or len(value) > 10:
        return None
    n = int(value)
    return n if lo <= n <= hi else None


def create_app(settings: Settings) -> ASGIApp:
    """The ASGI app for one study database."""
    store = Store(settings.db)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    templates = Jinja2Templates(env=env)

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    def message(request: Request, title: str, text: str, status: int = 200) -> Response:
        return page(request, "message.html", status, title=title, text=text)

    async def me(request: Request) -> Participant | None:
        token = request.cookies.get(COOKIE)
        if not token or len(token) > 64:
            return None
        return await run_in_threadpool(store.participant, token)

    def to_study(participant: Participant) -> Response:
        resp = RedirectResponse("/study", status_code=303)
        resp.set_cookie(COOKIE, participant.token, max_age=30 * 24 * 3600, httponly=True, samesite="lax")
        return resp

    async def start(request: Request) -> Response:
        prolific = {v: _clean_id(request.query_params.get(k)) for k, v in PROLIFIC_PARAMS.items()}
        known = await me(request) or await run_in_threadpool(store.participant, None, prolific["prolific_pid"])
        if known:
            return to_study(known)
        n_trials = settings.config.items_per_participant + settings.materials.extra_trials()
        return page(request, "consent.html", prolific={k: prolific[v] for k, v in PROLIFIC_PARAMS.items()},
                    n_trials=n_trials, minutes=max(2, round(n_trials * SECONDS_PER_TRIAL / 60)))

    async def consent(request: Request) -> Response:
        async with request.form(max_files=0, max_fields=8, max_part_size=256) as form:
            if form.get("consent") != "yes":
                return message(request, "Thank you", "You did not agree to take part, so the study ends here. "
                                                     "You can close this page.")
            prolific = {v: _clean_id(form.get(k)) for k, v in PROLIFIC_PARAMS.items()}
        known = await me(request)
        if known:
            return to_study(known)
        participant = await run_in_threadpool(
            store.assign, secrets.token_urlsafe(24), secrets.randbits(62), settings.stimuli, settings.materials,
            settings.config, prolific)
        if participant is None:
            return message(request, "The study is full", "Every sentence has been rated by enough people. "
                                                         "Thank you for your interest; please return the study.")
        return to_study(participant)

    async def study(request: Request) -> Response:
        participant = await me(request)
        if participant is None:
            return RedirectResponse("/", status_code=303)
        question = settings.materials.questions[participant.kind]
        if participant.completed_at is not None:
            url = settings.completion_url.replace("{code}", settings.completion_code) if settings.completion_url else None
            return page(request, "done.html", code=settings.completion_code, url=url)
        if participant.instructions_at is None:
            return page(request, "instructions.html", q=question, scale=SCALE,
                        n_practice=len(settings.materials.practice[participant.kind]))
        trial = await run_in_threadpool(store.next_trial, participant.id)
        if trial is None:  # answered the last trial in another tab
            return RedirectResponse("/study", status_code=303)
        answered, total = await run_in_threadpool(store.progress, participant.id)
        return page(request, "trial.html", q=question, trial=trial, scale=SCALE, answered=answered, total=total,
                    percent=round(100 * answered / total))

    async def instructions(request: Request) -> Response:
        participant = await me(request)
        if participant is not None:
            await run_in_threadpool(store.seen_instructions, participant.id)
        return RedirectResponse("/study", status_code=303)

    async def answer(request: Request) -> Response:
        participant = await me(request)
        if participant is None:
            return RedirectResponse("/", status_code=303)
        async with request.form(max_files=0, max_fields=4, max_part_size=64) as form:
            position = _int(form.get("position"), 0, 10_000)
            rating = _int(form.get("rating"), SCALE[0], SCALE[-1])
            rt_ms = _int(form.get("rt_ms"), 0, MAX_RT_MS)
        if position is None or rating is None:
            return message(request, "Please choose a rating", "Your answer was not a number from 1 to 7. "
                           "Please go back and choose one of the buttons.", status=400)
        await run_in_threadpool(store.answer, participant.id, position, rating, rt_ms)
        return RedirectResponse("/study", status_code=303)

    def authorised(request: Request) -> bool:
        given = request.query_params.get("token") or ""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), settings.admin_token.encode())

    async def admin(request: Request) -> Response:
        if not authorised(request):
            return PlainTextResponse("admin token required", status_code=403)
        summary = await run_in_threadpool(admin_summary, store, settings.stimuli, settings.config)
        return page(request, "admin.html", s=summary, token=request.query_params.get("token", ""),
                    n=settings.config.raters_per_item)

    def export(table: Callable[[Store], pd.DataFrame], name: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not authorised(request):
                return PlainTextResponse("admin token required", status_code=403)
            df = await run_in_threadpool(table, store)
            return Response(df.to_csv(index=False), media_type="text/csv; charset=utf-8",
                            headers={"content-disposition": f'attachment; filename="{name}"'})
        return endpoint

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/", start), Route("/consent", consent, methods=["POST"]), Route("/study", study),
        Route("/instructions", instructions, methods=["POST"]), Route("/answer", answer, methods=["POST"]),
        Route("/admin", admin), Route("/admin/ratings.csv", export(ratings_table, "ratings.csv")),
        Route("/admin/trials.csv", export(trials_table, "trials.csv")), Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return _SecurityHeaders(Starlette(routes=routes))
