"""Stable pseudonyms for speaker names and a user-supplied list of names.

The mapping lives in its own file (`<workspace>/pseudonyms.json`, mode 0600) so the workspace
can be shared while the mapping is withheld. Existing pseudonyms are reused on every run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from pipeline.errors import CultureCodeError
from pipeline.ingest.text import read_lines

MAPPING_FILE = "pseudonyms.json"
# role labels that identify nobody; kept so transcripts stay readable
ROLE_LABELS = {"r", "i", "q", "a", "interviewer", "researcher", "respondent", "moderator", "facilitator"}


class Pseudonymiser:
    def __init__(self, mapping_path: Path, extra_names: list[str] | None = None):
        self.path = mapping_path
        self.mapping: dict[str, str] = {}
        if mapping_path.exists():
            try:
                self.mapping = json.loads(mapping_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise CultureCodeError(
                    f"{mapping_path}: the pseudonym mapping is not valid JSON; restore it from a backup"
                ) from None
        for name in extra_names or []:
            self._pseudonym(name)
        self._pattern: re.Pattern[str] | None = None

    def _pseudonym(self, name: str) -> str:
        name = name.strip()
        if name not in self.mapping:
            self.mapping[name] = f"Person {len(self.mapping) + 1:03d}"
            self._pattern = None
        return self.mapping[name]

    def speaker(self, name: str | None) -> str | None:
        if name is None or name.strip().lower() in ROLE_LABELS:
            return name
        pseudonym = self._pseudonym(name)
        surname = name.split()[-1]
        if " " in name.strip() and len(surname) >= 3 and surname not in self.mapping:
            self.mapping[surname] = pseudonym  # "PC Dawes" is also "Dawes" in the talk
            self._pattern = None
        return pseudonym

    def learn_speakers(self, speakers: Iterable[str | None]) -> None:
        """Register every speaker before any text is rewritten, so early mentions are caught."""
        for name in speakers:
            self.speaker(name)

    def text(self, text: str) -> str:
        if not self.mapping:
            return text
        if self._pattern is None:
            names = sorted((n for n in self.mapping if len(n) >= 3), key=len, reverse=True)
            if not names:
                return text
            self._pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b", re.IGNORECASE)
        lowered = {k.lower(): v for k, v in self.mapping.items()}
        return self._pattern.sub(lambda m: lowered[m.group(0).lower()], text)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.mapping, indent=2, ensure_ascii=False), encoding="utf-8")
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)


def read_names_file(path: Path) -> list[str]:
    return [ln.strip() for _, ln in read_lines(path, "names file") if ln.strip() and not ln.startswith("#")]
