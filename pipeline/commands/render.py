"""The one render layer: a command prints a result as tables/lines, or with `--json` the same object as JSON.

`print_result(result, json_out, show)` is the pattern every command follows: `show` draws the human
form from `as_data(result)`, and `--json` writes `as_data(result)` itself, so both views always
hold the same figures. Results may be dataclasses, pydantic models, dicts or lists of these.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

out = Console(soft_wrap=True)
if not out.is_terminal:
    out.width = 140  # piped output: room for tables instead of the 80-column default


@dataclass(frozen=True)
class Column:
    """One table column: its header, where the cell comes from and how it is written.

    `key` is a mapping key or attribute name (default: the header) or a function of the row;
    `fmt` a format spec for numbers (".3f") or a function of the value.
    """

    header: str
    key: str | Callable[[Any], Any] | None = None
    fmt: str | Callable[[Any], str] | None = None
    justify: str = "left"
    overflow: str = "ellipsis"
    missing: str = "-"

    def cell(self, row: Any) -> str:
        value = _pick(row, self.header if self.key is None else self.key)
        if value is None:
            return self.missing
        if callable(self.fmt):
            return self.fmt(value)
        if self.fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
            return format(value, self.fmt)
        return str(value)


def _pick(row: Any, key: str | Callable[[Any], Any]) -> Any:
    if callable(key):
        return key(row)
    if isinstance(row, Mapping):
        return row.get(key)
    return getattr(row, key, None)


def as_data(obj: Any) -> Any:
    """Plain JSON-ready data: `as_dict()` where a result defines it, dataclass fields, pydantic dumps."""
    if hasattr(obj, "as_dict") and callable(obj.as_dict):
        return as_data(obj.as_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return as_data(dataclasses.asdict(obj))
    if hasattr(obj, "model_dump") and callable(obj.model_dump):
        return obj.model_dump(mode="json")
    if isinstance(obj, Mapping):
        return {str(k): as_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [as_data(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(as_data(data), indent=2, ensure_ascii=False, default=str) + "\n")


def print_result(result: Any, json_out: bool, show: Callable[[Any], None]) -> None:
    """`--json`: the result as JSON; otherwise `show(as_data(result))` prints tables and lines."""
    data = as_data(result)
    if json_out:
        print_json(data)
    else:
        show(data)


def columns_of(specs: Iterable[str | Column]) -> list[Column]:
    return [spec if isinstance(spec, Column) else Column(spec) for spec in specs]


def print_table(
    rows: Iterable[Any],
    columns: Sequence[str | Column],
    title: str | None = None,
    caption: str | None = None,
    show_header: bool = True,
) -> None:
    """A rich table; each row a mapping, an object with attributes, or handled by the columns' keys."""
    from rich.table import Table

    cols = columns_of(columns)
    table = Table(title=title, caption=caption, show_header=show_header)
    for col in cols:
        table.add_column(col.header, justify=col.justify, overflow=col.overflow)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(col.cell(row) for col in cols))
    out.print(table)


def print_pairs(pairs: Mapping[str, Any], title: str | None = None) -> None:
    """A two-column table of names and values (no header), e.g. the counts of a workspace."""
    rows = [{"name": name, "value": value} for name, value in pairs.items()]
    print_table(rows, ["name", "value"], title=title, show_header=False)


METRIC_COLUMNS = [
    Column("code"),
    Column("support", justify="right"),
    Column("precision", fmt=".2f", justify="right"),
    Column("recall", fmt=".2f", justify="right"),
    Column("F1", "f1", fmt=".2f", justify="right"),
    Column("kappa", "cohen_kappa", fmt=".2f", justify="right"),
]


def print_metrics(result: dict[str, Any], title: str, thresholds: dict[str, float] | None = None) -> None:
    """Per-code precision/recall/F1/kappa (and thresholds) with micro and macro F1 below."""
    rows = [{"code": code, **m, "threshold": (thresholds or {}).get(code)} for code, m in result["per_code"].items()]
    columns = METRIC_COLUMNS + ([Column("threshold", fmt=".2f", justify="right")] if thresholds else [])
    print_table(
        rows,
        columns,
        title=title,
        caption=f"micro F1 {result['micro_f1']:.3f}   "
        f"macro F1 {result['macro_f1']:.3f}   ({result['segments']} segments)",
    )


def _kappa_ci(row: dict[str, Any]) -> str:
    if row.get("ci_low") is None or row.get("ci_high") is None:
        return "-"
    return f"{row['ci_low']:.2f}–{row['ci_high']:.2f}"


ADMISSION_COLUMNS = [
    Column("code"),
    Column("kappa", fmt=".2f", justify="right"),
    Column("95% CI", _kappa_ci, justify="right"),
    Column("n", justify="right"),
    Column("positives", justify="right"),
    Column("admitted", fmt=lambda v: "yes" if v else "no"),
    Column("from", "source"),
    Column("reason", overflow="fold"),
]


def admission_summary(table: dict[str, Any]) -> str:
    """One plain sentence: which codes of the version are pre-ticked in Label Studio, and the bar."""
    version, admitted = table["model_version"], table["admitted"]
    if not table["enabled"]:
        return f"Admission is off: every code {version} predicts is pre-ticked."
    bar = f"kappa >= {table['min_kappa']:.2f} on >= {table['min_evidence']} human positives and negatives"
    if not admitted:
        return f"Below admission: none of {version}'s codes is pre-ticked in Label Studio ({bar})."
    return f"{len(admitted)} of {len(table['rows'])} codes of {version} are pre-ticked ({bar}): {', '.join(admitted)}."


def print_admission(table: dict[str, Any]) -> None:
    """The admission table of one model version (`culturecode admission`, the agreement command)."""
    sources = "; ".join(f"{name}: {what}" for name, what in table.get("sources", {}).items())
    print_table(
        table["rows"],
        ADMISSION_COLUMNS,
        title=f"Admission of {table['model_version']} ({table['kind']})",
        caption=f"Evidence from {sources}" if sources else None,
    )
    out.print(admission_summary(table), highlight=False)
