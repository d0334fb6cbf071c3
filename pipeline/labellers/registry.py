"""Which labellers are installed: Python entry points of the group `culturecode.labellers`.

Each entry point names a factory, `name = "package.module:factory"`, that takes a `LabelContext`
and returns a `Labeller`. The classifier and the LLM backends register this way in culturecode's
own pyproject.toml, exactly as a plugin package would in its own. Listing names reads package
metadata only; a factory's module is imported when that labeller is used.

`register(name, target)` adds one for this process only (tests, notebooks): `target` is a
"module:attr" string, loaded the same way as an installed entry point, or the factory itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from pipeline.errors import CultureCodeError

if TYPE_CHECKING:
    from pipeline.labellers.base import LabelContext, Labeller

GROUP = "culturecode.labellers"


class _InProcess:
    """A factory registered in this process, with the part of EntryPoint's interface used here."""

    def __init__(self, name: str, factory: Callable[..., Any]):
        self.name, self.factory = name, factory
        self.value = f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', repr(factory))}"

    def load(self) -> Callable[..., Any]:
        return self.factory


_registered: dict[str, EntryPoint | _InProcess] = {}


@functools.cache
def _installed() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def _entries() -> dict[str, EntryPoint | _InProcess]:
    return {**_installed(), **_registered}


def register(name: str, target: str | Callable[..., Any]) -> None:
    """Make a labeller factory available in this process under `name` (it wins over an installed one)."""
    if isinstance(target, str):
        _registered[name] = EntryPoint(name=name, value=target, group=GROUP)
    else:
        _registered[name] = _InProcess(name, target)


def unregister(name: str) -> None:
    _registered.pop(name, None)


def available() -> list[str]:
    """The names `--with` accepts, sorted."""
    return sorted(_entries())


def check(name: str, what: str = "--with") -> str:
    """`name` if a labeller of that name is installed, else a one-line error listing those that are."""
    if name not in _entries():
        raise CultureCodeError(
            f"{what} '{name}': no labeller of that name is installed; installed: "
            f"{', '.join(available()) or 'none'} (see docs/labellers.md)"
        )
    return name


def load(name: str) -> Callable[..., Any]:
    """The factory registered under `name` (its module is imported now)."""
    entry = _entries()[check(name)]
    try:
        return entry.load()
    except (ImportError, AttributeError) as exc:
        raise CultureCodeError(f"labeller '{name}' ({entry.value}) cannot be loaded: {exc}") from None


def kind_of(name: str) -> str:
    """The `models.kind` the labeller's versions are registered under (default: its name)."""
    return str(getattr(load(name), "kind", name))


def create(name: str, context: LabelContext) -> Labeller:
    """A ready labeller: the factory registered under `name`, called with `context`."""
    labeller = load(name)(context)
    missing = [a for a in ("name", "version", "label") if not hasattr(labeller, a)]
    if missing:
        raise CultureCodeError(
            f"labeller '{name}' ({_entries()[name].value}) made an object without "
            f"{', '.join(missing)}; see docs/labellers.md"
        )
    return labeller


LLM_PREFIX = "llm-"


def llm_backends() -> list[str]:
    """The LLM backends installed: the labellers named `llm-<backend>`, without the prefix."""
    return [n[len(LLM_PREFIX) :] for n in available() if n.startswith(LLM_PREFIX)]


def check_llm_backend(name: str) -> str:
    """`name` if an LLM backend of that name is installed (llm.backend, --llm), else a one-line error."""
    if f"{LLM_PREFIX}{name}" not in _entries():
        raise CultureCodeError(
            f"llm.backend '{name}': no LLM backend of that name is installed; installed: "
            f"{', '.join(llm_backends()) or 'none'} (see docs/labellers.md)"
        )
    return name
