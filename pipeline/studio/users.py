"""Annotator accounts. Label Studio's users API cannot set passwords, so accounts are made the
way a person would: through the organisation's invite link (signup is closed without it)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import httpx

from pipeline.config import Settings
from pipeline.errors import CultureCodeError
from pipeline.studio import server
from pipeline.studio.client import Studio

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


@dataclass
class Annotator:
    name: str
    email: str
    password: str | None  # None when the account existed already
    created: bool
    login_url: str


def annotator_email(name: str, settings: Settings) -> str:
    """'alice' -> 'alice@<studio.annotator_domain>'; an email stays as it is (lower-cased)."""
    name = name.strip()
    if "@" in name:
        return name.lower()
    if not NAME.match(name):
        raise CultureCodeError(
            f"annotator name '{name}' is not usable; use letters, digits, '.', '_' or '-' (or an email)"
        )
    return f"{name}@{settings.studio.annotator_domain}".lower()


def _signup(studio: Studio, email: str, password: str) -> None:
    invite = studio.call(studio.sdk.organizations.invites.get_invite_link)
    path = f"/user/signup/?token={invite.token}"
    with httpx.Client(base_url=studio.url, timeout=30, follow_redirects=False) as http:
        page = studio.call(http.get, path)
        csrf = http.cookies.get("csrftoken")
        if page.status_code != 200 or not csrf:
            raise CultureCodeError(
                f"{studio.url}: the signup page did not open ({page.status_code}); "
                f"create {email} in Label Studio by hand"
            )
        form = {
            "csrfmiddlewaretoken": csrf,
            "email": email,
            "password": password,
            "allow_newsletters": "",
            "how_find_us": "",
            "elaborate": "",
        }
        resp = studio.call(http.post, path, data=form, headers={"Referer": f"{studio.url}{path}"})
    if resp.status_code not in (301, 302):
        raise CultureCodeError(
            f"{studio.url} refused to create {email} ({resp.status_code}); "
            f"it may already exist with another spelling, or the password rules changed"
        )


def add_annotators(studio: Studio, settings: Settings, names: list[str]) -> list[Annotator]:
    """Create one account per name (existing ones are left alone) and say how to log in."""
    if not names:
        raise CultureCodeError("name at least one annotator, e.g. `culturecode annotators add alice bob`")
    known = {email.lower() for email in studio.user_emails(refresh=True).values()}
    creds = server.credentials(settings) if studio.embedded else None
    login = f"{studio.url}/user/login/"
    made: list[Annotator] = []
    for name in names:
        email = annotator_email(name, settings)
        if email in known:
            made.append(Annotator(name, email, None, False, login))
            continue
        password = secrets.token_urlsafe(9)
        _signup(studio, email, password)
        known.add(email)
        made.append(Annotator(name, email, password, True, login))
        if creds is not None:
            creds.setdefault("annotators", {})[email] = password
            server.save_credentials(settings, creds)
    studio.user_emails(refresh=True)
    return made
