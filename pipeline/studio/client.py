"""One place for talking to a Label Studio server: which URL and key, retries, and error messages.

The key comes from the environment variable named by `studio.api_key_env`, else from the 0600
file `studio.api_key_file`, else (embedded server) from the workspace's credentials file. It is
never printed or logged. Every call goes through `Studio.call`, which retries transport failures
with exponential backoff and turns auth failures into one-line `CultureCodeError`s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from pipeline.config import Settings
from pipeline.errors import CultureCodeError
from pipeline.integrity import read_private
from pipeline.studio import server

T = TypeVar("T")
TRANSIENT = (httpx.TransportError,)
RETRY_STATUS = {502, 503, 504}


@dataclass
class Studio:
    """A connected server: `sdk` is the label-studio-sdk client; use `call` for every request."""

    url: str
    sdk: LabelStudio
    retries: int
    embedded: bool
    start_hint: str
    retried: int = 0  # transport failures seen; push reconciles after any
    _users: dict[int, str] = field(default_factory=dict)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except TRANSIENT as exc:
                failure: Exception = exc
            except ApiError as exc:
                if exc.status_code in (401, 403):
                    raise CultureCodeError(self._auth_message(exc.status_code)) from None
                if exc.status_code not in RETRY_STATUS:
                    raise
                failure = exc
            self.retried += 1
            if attempt < self.retries:
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        raise CultureCodeError(
            f"cannot reach Label Studio at {self.url} after {self.retries + 1} tries "
            f"({type(failure).__name__}); {self.start_hint}"
        )

    def _auth_message(self, status: int) -> str:
        if self.embedded:
            return (
                f"Label Studio at {self.url} refused culturecode's API key ({status}); the "
                f"workspace's studio/ folder belongs to another server: stop it and run "
                f"`culturecode studio start` again"
            )
        return (
            f"Label Studio at {self.url} refused the API key ({status}): it is wrong or expired; "
            f"copy a fresh token from Account & Settings into the key variable or key file"
        )

    def user_emails(self, refresh: bool = False) -> dict[int, str]:
        """Label Studio user id -> email (exports name annotators by integer id)."""
        if refresh or not self._users:
            users = self.call(lambda: list(self.sdk.users.list()))
            self._users = {u.id: u.email or u.username or str(u.id) for u in users}
        return self._users


def _key_from_file(path: Path) -> str:
    if not path.exists():
        raise CultureCodeError(f"API key file {path} not found; create it with the key on one line (chmod 600)")
    return read_private(path, "API key file", "put the Label Studio API key in it")


def resolve(settings: Settings) -> tuple[str, str, bool]:
    """(url, api key, embedded?) for the configured server."""
    cfg = settings.studio
    env_key = os.environ.get(cfg.api_key_env, "").strip()
    if cfg.url:
        url = cfg.url.rstrip("/")
        if env_key:
            return url, env_key, False
        if cfg.api_key_file:
            return url, _key_from_file(Path(cfg.api_key_file).expanduser()), False
        raise CultureCodeError(
            f"no API key for {url}: set {cfg.api_key_env} or studio.api_key_file (a chmod-600 file "
            f"holding the key from Account & Settings)"
        )
    creds = server.credentials(settings)
    if creds is None:
        raise CultureCodeError(
            f"no Label Studio for workspace {settings.workspace}: run `culturecode studio start "
            f"--workspace {settings.workspace}` or pass --url for a team server"
        )
    return server.server_status(settings).url, creds["api_key"], True


def connect(settings: Settings, check: bool = True) -> Studio:
    """A client for the configured server; `check` makes one request so bad keys fail early."""
    url, key, embedded = resolve(settings)
    hint = (
        f"run `culturecode studio start --workspace {settings.workspace}`"
        if embedded
        else "check that the server is up and --url is right"
    )
    try:
        sdk = LabelStudio(base_url=url, api_key=key, timeout=settings.studio.timeout, max_retries=0)
    except Exception as exc:  # the SDK rejects expired JWT tokens while building the client
        if "expired" in str(exc).lower():
            raise CultureCodeError(
                f"the API key for {url} has expired: create a new personal access token in "
                f"Account & Settings and put it in {settings.studio.api_key_env}"
            ) from None
        raise
    studio = Studio(url=url, sdk=sdk, retries=settings.studio.retries, embedded=embedded, start_hint=hint)
    if check:
        studio.call(sdk.users.whoami)
    return studio
