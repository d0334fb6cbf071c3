"""Which labellers are installed: Python entry points of the group `culturecode.labellers`.

Each entry point names a factory, `name = "package.module:factory"`, that takes a `LabelContext`
and returns a `Labeller`. The classifier and the LLM backends register this way in culturecode's
own pyproject.toml, exactly as a plugin package would in its own. Listing names reads package
metadata only; a factory's module is imported when that labeller is used.

`register(name, target)` adds one for this process only (tests, notebooks): `target` is a
"module:attr" string, loaded the same way as an installed entry point, or the factory itself.
The registry itself is `pipeline.plugins.Registry`, shared with the selection strategies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipeline.errors import CultureCodeError
from pipeline.plugins import Registry
from pipeline.store.models import current_model

if TYPE_CHECKING:
    from pipeline.labellers.base import LabelContext, Labeller
    from pipeline.store import Store

GROUP = "culturecode.labellers"
REGISTRY = Registry(GROUP, "labeller", "docs/labellers.md")


def register(name: str, target: str | Callable[..., Any]) -> None:
    """Make a labeller factory available in this process under `name` (it wins over an installed one)."""
    REGISTRY.register(name, target)


def unregister(name: str) -> None:
    REGISTRY.unregister(name)


def available() -> list[str]:
    """The names `--with` accepts, sorted."""
    return REGISTRY.available()


def check(name: str, what: str = "--with") -> str:
    """`name` if a labeller of that name is installed, else a one-line error listing those that are."""
    return REGISTRY.check(name, what)


def load(name: str) -> Callable[..., Any]:
    """The factory registered under `name` (its module is imported now)."""
    return REGISTRY.load(name, "--with")


def kind_of(name: str) -> str:
    """The `models.kind` the labeller's versions are registered under (default: its name)."""
    return str(getattr(load(name), "kind", name))


def current_version(store: Store, name: str, what: str = "--with") -> str:
    """The current model version of labeller `name`'s kind (`push --with NAME` pre-labels with it); a one-line
    error naming the command that makes one when there is none."""
    name = check(name, what)
    kind = kind_of(name)
    version = current_model(store, kind)
    if version is None:
        how = {"llm": "culturecode llm label", "classifier": "culturecode train --gold examples/gold/"}.get(
            kind, f"culturecode prelabel --with {name}"
        )
        raise CultureCodeError(f"no {kind} labels in {store.workspace}: run `{how}` first")
    return version


def create(name: str, context: LabelContext) -> Labeller:
    """A ready labeller: the factory registered under `name`, called with `context`."""
    labeller = load(name)(context)
    missing = [a for a in ("name", "version", "label") if not hasattr(labeller, a)]
    if missing:
        raise CultureCodeError(
            f"labeller '{name}' ({REGISTRY.describe(name)}) made an object without "
            f"{', '.join(missing)}; see docs/labellers.md"
        )
    return labeller


LLM_PREFIX = "llm-"


def llm_backends() -> list[str]:
    """The LLM backends installed: the labellers named `llm-<backend>`, without the prefix."""
    return [n[len(LLM_PREFIX) :] for n in available() if n.startswith(LLM_PREFIX)]


def check_llm_backend(name: str) -> str:
    """`name` if an LLM backend of that name is installed (llm.backend, --llm), else a one-line error."""
    if f"{LLM_PREFIX}{name}" not in REGISTRY.entries():
        raise CultureCodeError(
            f"llm.backend '{name}': no LLM backend of that name is installed; installed: "
            f"{', '.join(llm_backends()) or 'none'} (see docs/labellers.md)"
        )
    return name
