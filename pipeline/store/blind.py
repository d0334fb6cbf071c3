"""The random streams: the blind subset (segments every annotator codes with no pre-labels, for the anchoring check)
and the audit stream (a uniformly random sample coded with pre-labels, which the model's order did not choose).

Membership is a pure function of the segment id, a per-workspace salt (meta `blind_salt`, drawn once)
and the fraction: sha256(salt, id) read as a number in [0, 1) falls below the fraction. So reruns,
later pushes and every annotator's project pick the same segments, a larger fraction keeps every
segment of a smaller one, and the agreement report can tell which segments were blind from the salt
and the fractions recorded per project (meta `blind_fractions`) alone. The audit subset is drawn the same way from
an independent hash (tag `audit`), so a segment is in both with probability blind x audit fraction; it is then
pushed blind, and the audit stream holds the audit segments that are not blind (inclusion probability
audit x (1 - blind)). Each pushed task records its stream and probability (`tasks.stream`, pipeline/studio/stream.py).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.store.db import Store

SALT_KEY = "blind_salt"
FRACTIONS_KEY = "blind_fractions"  # {"<server url> <project id>": the fraction of that project's last push}
AUDIT_FRACTIONS_KEY = "audit_fractions"  # as FRACTIONS_KEY, for the audit stream
AUDIT_TAG = "audit\x00"
# where blind and audit tasks sit for annotators (pipeline/studio/stream.py): said by `push` and in the appendix
ORDER_RULE = (
    "blind and audit tasks are spread through each annotator's label stream at random positions (one in each of "
    "equal stretches of the stream, at a random place within it), interleaved with the model-ordered tasks"
)


def draw(salt: str, segment_id: str) -> float:
    """The segment's stable position in [0, 1) under this salt."""
    digest = hashlib.sha256(f"{salt}\x00{segment_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class BlindSubset:
    salt: str
    fraction: float
    tag: str = ""  # "" for the blind subset, AUDIT_TAG for the audit stream: independent draws under one salt

    def __contains__(self, segment_id: object) -> bool:
        return (
            self.fraction > 0 and isinstance(segment_id, str) and draw(self.salt, self.tag + segment_id) < self.fraction
        )

    def pick(self, segment_ids: Iterable[str]) -> list[str]:
        """The blind ones among `segment_ids`, in their order."""
        return [s for s in segment_ids if s in self]


def workspace_salt(store: Store) -> str:
    """The workspace's salt, drawn and saved on first use."""
    salt = store.get_meta(SALT_KEY)
    if salt is None:
        salt = secrets.token_hex(16)
        with store.transaction():
            store.set_meta(SALT_KEY, salt)
    return salt


def blind_fractions(store: Store, key: str = FRACTIONS_KEY) -> dict[str, float]:
    """The fraction each project was last pushed with (`key`: AUDIT_FRACTIONS_KEY for the audit stream's)."""
    return json.loads(store.get_meta(key) or "{}")


def record_blind_fraction(store: Store, url: str, project_id: int, fraction: float, key: str = FRACTIONS_KEY) -> None:
    fractions = blind_fractions(store, key)
    fractions[f"{url} {project_id}"] = fraction
    store.set_meta(key, json.dumps(fractions, sort_keys=True))


def last_blind_fraction(store: Store, key: str = FRACTIONS_KEY) -> float:
    """The fraction in force when a push names none: the largest any project was last pushed with."""
    return max(blind_fractions(store, key).values(), default=0.0)


def audit_subset(store: Store, fraction: float | None = None) -> BlindSubset:
    """The audit stream's draw at `fraction` (None: the one the workspace's pushes use), before blind ones leave it."""
    fraction = last_blind_fraction(store, AUDIT_FRACTIONS_KEY) if fraction is None else fraction
    return BlindSubset(workspace_salt(store) if fraction > 0 else store.get_meta(SALT_KEY) or "", fraction, AUDIT_TAG)


def blind_subset(store: Store, fraction: float | None = None) -> BlindSubset:
    """The subset at `fraction` (None: the one the workspace's pushes use)."""
    fraction = last_blind_fraction(store) if fraction is None else fraction
    return BlindSubset(workspace_salt(store) if fraction > 0 else store.get_meta(SALT_KEY) or "", fraction)


def pushed_blind_subset(store: Store) -> BlindSubset | None:
    """The subset some project was pushed with (the largest fraction), None when no push was blind."""
    fraction = last_blind_fraction(store)
    salt = store.get_meta(SALT_KEY)
    return BlindSubset(salt, fraction) if fraction > 0 and salt else None
