"""The methods appendix as HTML, Markdown and LaTeX (Jinja2 templates in pipeline/gold/templates/) and CITATION.cff.

Every value from the workspace is escaped for its format: HTML by Jinja2's autoescape, Markdown by `md`/`cell`
(`<` escaped, so a renderer shows markup in a transcript as text), LaTeX by `latex_escape`, applied to every
printed value (the templates hold the only LaTeX commands).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import jinja2

from pipeline import __version__

TEMPLATES = Path(__file__).parent / "templates"
FILES = {"html": "appendix.html", "md": "appendix.md", "tex": "appendix.tex"}

LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    # braced, a bracket cannot become the optional argument of a preceding \\ or \item
    "[": "{[}",
    "]": "{]}",
    # characters pdflatex's utf8 input does not know, written as LaTeX
    "α": r"$\alpha$",
    "κ": r"$\kappa$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "–": "--",
    "—": "---",
    "…": r"\ldots{}",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(c) for c in LATEX_SPECIALS))


_ENTITY = re.compile(r"&(?=#?\w+;)")


class LatexSafe(str):
    """Text that is LaTeX already (a filter's output): printed as it is."""


def latex_escape(value: Any) -> str:
    """`value` as LaTeX text: every character with a meaning in LaTeX is written so that it prints as itself."""
    if isinstance(value, LatexSafe):
        return value
    return _LATEX_PATTERN.sub(lambda m: LATEX_SPECIALS[m.group(0)], "" if value is None else str(value))


def latex_lines(value: str) -> LatexSafe:
    """A code block: line by line, spaces kept (`\\mbox{}` lets an empty line end too)."""
    lines = [latex_escape(line).replace(" ", "\\ ") for line in str(value).splitlines()]
    return LatexSafe("\n".join(f"\\mbox{{}}{line}\\\\" for line in lines))


def md(value: Any) -> str:
    """Markdown text on one line, `<` and entity-like `&` escaped: a renderer shows markup as text (and
    `>=` stays readable)."""
    flat = " ".join(str(value).split())
    return _ENTITY.sub("&amp;", flat).replace("<", "&lt;")


def md_cell(value: Any) -> str:
    return md(value).replace("|", "\\|")


def md_fenced(value: str) -> str:
    """A fenced code block whose fence no backtick run in `value` can close."""
    longest = max((len(run) for run in re.findall("`+", value)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{value}\n{fence}"


def _environment(fmt: str) -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(TEMPLATES))
    if fmt == "html":
        return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    if fmt == "md":
        env = jinja2.Environment(loader=loader, autoescape=False, undefined=jinja2.StrictUndefined)
        env.filters.update(md=md, cell=md_cell, fenced=md_fenced)
        return env
    env = jinja2.Environment(  # LaTeX braces and % would clash with Jinja2's own delimiters
        loader=loader,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        block_start_string="<%",
        block_end_string="%>",
        variable_start_string="<<",
        variable_end_string=">>",
        comment_start_string="<#",
        comment_end_string="#>",
        finalize=latex_escape,
    )
    env.filters["lines"] = latex_lines
    return env


def render(appendix: dict[str, Any], fmt: str) -> str:
    """The appendix (`Appendix.as_dict()`) in one format: html, md or tex."""
    template = _environment(fmt).get_template(f"appendix.{fmt}.j2")
    return template.render(a=appendix, version=__version__).rstrip() + "\n"


def citation_cff() -> str:
    """culturecode's CITATION.cff (the repository root holds the same text)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined)
    return env.get_template("CITATION.cff.j2").render(version=__version__).rstrip() + "\n"


def write_appendix(appendix: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """appendix.{html,md,tex} and CITATION.cff in `out_dir`; a rerun replaces them."""
    from pipeline.outputs import writable_folder, write_text

    writable_folder(out_dir, "methods appendix")
    texts = {fmt: render(appendix, fmt) for fmt in FILES}  # render all, then write
    texts["cff"] = citation_cff()
    paths = {fmt: out_dir / name for fmt, name in {**FILES, "cff": "CITATION.cff"}.items()}
    for fmt, body in texts.items():
        write_text(paths[fmt], body, "methods appendix")
    for image in images(appendix):  # the Markdown and LaTeX versions show plots from files next to them
        paths[Path(image["file"]).stem] = out_dir / image["file"]
        paths[Path(image["file"]).stem].write_bytes(base64.b64decode(image["png"]))
    return paths


def images(appendix: dict[str, Any]) -> list[dict[str, Any]]:
    """The appendix's plots (blocks of kind image), in order."""
    return [b for s in appendix["sections"] for b in s["blocks"] if b["kind"] == "image"]
