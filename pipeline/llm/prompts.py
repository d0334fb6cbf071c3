"""Prompt templates (Jinja2, `prompts/<name>.system.j2` + `prompts/<name>.user.j2`) rendered from
the codebook and a segment with its neighbouring turns.

The prompt version is a hash of the two template files, so every stored LLM label says exactly
which wording produced it. Undefined variables fail loudly, naming the template and variable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from pipeline.config import Codebook, shipped_file, shipped_roots
from pipeline.errors import CultureCodeError
from pipeline.store import Segment

PROMPTS_DIR = shipped_file("prompts")  # the templates culturecode ships (the checkout's, else the package's)


@dataclass
class Prompt:
    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


@dataclass
class Example:
    """A labelled segment shown to the model in a few-shot prompt."""

    text: str
    codes: list[str]
    document: str = ""
    answer: str = ""


@dataclass
class PromptTemplate:
    name: str
    directory: Path
    system_source: str
    user_source: str
    env: jinja2.Environment = field(repr=False)

    @property
    def version(self) -> str:
        digest = hashlib.sha256(f"{self.system_source}\0{self.user_source}".encode())
        return digest.hexdigest()[:10]

    @property
    def few_shot(self) -> bool:
        return "examples" in self.user_source

    def _render(self, part: str, **context: Any) -> str:
        filename = f"{self.name}.{part}.j2"
        try:
            return self.env.get_template(filename).render(**context).strip() + "\n"
        except jinja2.UndefinedError as exc:
            raise CultureCodeError(
                f"prompt template {self.directory / filename}: {exc.message}; "
                f"the variables available are codebook, codes, segment, before, after, examples"
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise CultureCodeError(
                f"prompt template {self.directory / filename} line {exc.lineno}: {exc.message}"
            ) from None

    def render_system(self, codebook: Codebook) -> str:
        return self._render("system", codebook=codebook, codes=codebook.codes)

    def render(
        self,
        codebook: Codebook,
        segment: Segment,
        before: list[Segment] | None = None,
        after: list[Segment] | None = None,
        examples: list[Example] | None = None,
    ) -> Prompt:
        context = {
            "codebook": codebook,
            "codes": codebook.codes,
            "segment": segment,
            "before": before or [],
            "after": after or [],
            "examples": examples or [],
        }
        return Prompt(self.render_system(codebook), self._render("user", **context))


def default_prompts_dir(name: str) -> Path:
    """The first of ./prompts, the checkout's prompts/ and the installed package's copy that has template `name`."""
    for directory in [Path.cwd() / "prompts", *(root / "prompts" for root in shipped_roots())]:
        if (directory / f"{name}.system.j2").is_file():
            return directory
    return PROMPTS_DIR


def load_template(name: str, directory: str | Path | None = None) -> PromptTemplate:
    """Load `<name>.system.j2` and `<name>.user.j2` from `directory` (default: `default_prompts_dir`)."""
    directory = Path(directory) if directory else default_prompts_dir(name)
    sources = {}
    for part in ("system", "user"):
        path = directory / f"{name}.{part}.j2"
        if not path.exists():
            known = sorted({p.name.split(".")[0] for p in directory.glob("*.j2")})
            raise CultureCodeError(
                f"prompt '{name}': {path} not found; prompts in {directory}: {', '.join(known) or 'none'}"
            )
        sources[part] = path.read_text(encoding="utf-8")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return PromptTemplate(name, directory, sources["system"], sources["user"], env)
