"""Plugin registries: named factories found through Python entry points, one registry per group.

culturecode's own pyproject.toml registers its built-ins exactly as a plugin package would in its own
(`[project.entry-points."culturecode.labellers"]`, `"culturecode.strategies"`). Listing names reads package
metadata only; a factory's module is imported when it is used. `register(name, target)` adds one for this
process only (tests, notebooks): `target` is a "module:attr" string, loaded the same way as an installed entry
point, or the factory itself.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pipeline.errors import CultureCodeError


class _InProcess:
    """A factory registered in this process, with the part of EntryPoint's interface used here."""

    def __init__(self, name: str, factory: Callable[..., Any]):
        self.name, self.factory = name, factory
        self.value = f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', repr(factory))}"

    def load(self) -> Callable[..., Any]:
        return self.factory


class Registry:
    """The factories of one entry-point `group`; `noun` and `guide` name them in error messages."""

    def __init__(self, group: str, noun: str, guide: str):
        self.group, self.noun, self.guide = group, noun, guide
        self._registered: dict[str, EntryPoint | _InProcess] = {}
        self._installed: dict[str, EntryPoint] | None = None

    def entries(self) -> dict[str, EntryPoint | _InProcess]:
        if self._installed is None:
            self._installed = {ep.name: ep for ep in entry_points(group=self.group)}
        return {**self._installed, **self._registered}

    def register(self, name: str, target: str | Callable[..., Any]) -> None:
        """Make a factory available in this process under `name` (it wins over an installed one)."""
        if isinstance(target, str):
            self._registered[name] = EntryPoint(name=name, value=target, group=self.group)
        else:
            self._registered[name] = _InProcess(name, target)

    def unregister(self, name: str) -> None:
        self._registered.pop(name, None)

    def available(self) -> list[str]:
        """The installed names, sorted."""
        return sorted(self.entries())

    def check(self, name: str, what: str) -> str:
        """`name` if one of that name is installed, else a one-line error listing those that are."""
        if name not in self.entries():
            raise CultureCodeError(
                f"{what} '{name}': no {self.noun} of that name is installed; installed: "
                f"{', '.join(self.available()) or 'none'} (see {self.guide})"
            )
        return name

    def load(self, name: str, what: str) -> Callable[..., Any]:
        """The factory registered under `name` (its module is imported now)."""
        entry = self.entries()[self.check(name, what)]
        try:
            return entry.load()
        except (ImportError, AttributeError) as exc:
            raise CultureCodeError(f"{self.noun} '{name}' ({entry.value}) cannot be loaded: {exc}") from None

    def describe(self, name: str) -> str:
        """Where `name`'s factory lives ("module:attr"), for messages."""
        return self.entries()[name].value
