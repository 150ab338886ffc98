"""Open (or create) a study database for a stimulus set and serve it with uvicorn.

A database belongs to one stimulus set: its SHA-256 is stored at creation, and a server started on the same
database with other stimuli is refused, so two studies never mix. The completion code is fixed at creation too.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from entangle.files import InputError
from entangle.stimuli import StimulusSet
from entangle.survey.design import StudyConfig
from entangle.survey.materials import Materials
from entangle.survey.store import Store
from entangle.survey.web import Settings

_CODE = re.compile(r"[A-Za-z0-9_-]{4,40}")


def open_study(stimuli: StimulusSet, materials: Materials, config: StudyConfig, db: str | Path, *,
               admin_token: str | None = None, completion_code: str | None = None,
               completion_url: str | None = None) -> Settings:
    """Validate the settings, create or reopen the database, and return what `create_app` serves."""
    config.validate(stimuli)
    if admin_token is not None and (len(admin_token) < 16 or not _CODE.fullmatch(admin_token[:40])):
        raise ValueError("--admin-token must be at least 16 letters, digits, '-' or '_'")
    if completion_code is not None and not _CODE.fullmatch(completion_code):
        raise ValueError("--completion-code must be 4-40 letters, digits, '-' or '_'")
    if completion_url is not None and not re.fullmatch(r"https?://[^\s\"'<>]{1,500}", completion_url):
        raise ValueError("--completion-url must be an http(s) URL (use {code} where the completion code goes)")
    store = Store(db)
    meta = store.init_meta({"stimuli_sha256": stimuli.sha256, "stimuli_source": stimuli.source,
                            "completion_code": completion_code or secrets.token_hex(4).upper()})
    if meta["stimuli_sha256"] != stimuli.sha256:
        raise InputError(db, None, None, f"this database belongs to other stimuli ({meta['stimuli_source']}); "
                                         "start a new study with another --db")
    if completion_code is not None and meta["completion_code"] != completion_code:
        raise InputError(db, None, None, f"this study's completion code is {meta['completion_code']}; "
                                         "it cannot change once the study has started")
    return Settings(stimuli, materials, config, Path(db), admin_token or secrets.token_urlsafe(24),
                    meta["completion_code"], completion_url)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the study until interrupted (access log off: admin URLs carry the token, participants' ids stay out)."""
    import uvicorn  # noqa: PLC0415  (the web stack loads only for `survey serve`)

    from entangle.survey.web import create_app  # noqa: PLC0415

    uvicorn.run(create_app(settings), host=host, port=port, access_log=False, log_level="warning",
                server_header=False)
