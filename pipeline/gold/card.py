"""The dataset card (README.md) written next to an exported gold dataset."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline import __version__
from pipeline.config import Codebook
from pipeline.store import Store, now


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def dataset_card(
    store: Store, codebook: Codebook, rows: list[dict[str, Any]], agreement: dict[str, Any], keep_annotator_ids: bool
) -> str:
    splits = Counter(r["split"] for r in rows)
    methods = Counter(r["gold_method"] for r in rows)
    per_split = {s: Counter(c for r in rows if r["split"] == s for c in r["gold_codes"]) for s in splits}
    versions = sorted({a["prelabel_version"] for r in rows for a in r["annotations"] if a["prelabel_version"]})
    changed = [a["changed_prelabel"] for r in rows for a in r["annotations"] if a["changed_prelabel"] is not None]
    split_names = [s for s in ("train", "validation", "test") if s in splits]
    lines = [
        "---",
        f"pretty_name: {codebook.name} (gold labels)",
        "task_categories:",
        "- text-classification",
        "task_ids:",
        "- multi-label-classification" if not codebook.single_choice else "- multi-class-classification",
        "---",
        "",
        f"# {codebook.name}: gold-labelled segments",
        "",
        f"{len(rows)} transcript segments from {len({r['document'] for r in rows})} documents, each with gold "
        f"codes from the codebook `{codebook.id}` (version {codebook.version}, hash `{codebook.content_hash}`), "
        f"{'one code per segment' if codebook.single_choice else 'any number of codes per segment'}.",
        "",
        "## Splits",
        "",
        "Split by document, so no interview appears in two splits.",
        "",
        "| split | segments |",
        "|---|---|",
        *[f"| {s} | {splits[s]} |" for s in split_names],
        "",
        "## Codebook and counts per code",
        "",
        "| code | name | definition | " + " | ".join(split_names) + " | alpha |",
        "|---|---|---|" + "---|" * (len(split_names) + 1),
    ]
    for code in codebook.codes:
        alpha = agreement["codes"].get(code.id, {}).get("krippendorff_alpha")
        lines.append(
            f"| {code.id} | {_md(code.name)} | {_md(code.definition)} | "
            + " | ".join(str(per_split[s][code.id]) for s in split_names)
            + f" | {_fmt(alpha)} |"
        )
    o = agreement["overall"]
    lines += [
        "",
        "## Agreement",
        "",
        f"{agreement['n_annotators']} annotators coded {agreement['n_items']} segments. "
        f"Over the whole label set: Krippendorff's alpha with MASI distance {_fmt(o['alpha_masi'])}, with Jaccard "
        f"distance {_fmt(o['alpha_jaccard'])}; exact-match agreement {_fmt(o['exact_match'])}. "
        + agreement["summary"]["text"],
        "",
        "The `alpha` column above is Krippendorff's alpha per code (nominal, each code as a yes/no decision). "
        "Each row's `agreement` is the mean over annotator pairs and codes of agreeing decisions; "
        "`exact_agreement` the share of annotator pairs that chose identical code sets.",
        "",
        "## How the data was produced",
        "",
        f"- Transcripts were split into speaker turns and labelled in Label Studio, "
        f"{'after pre-labelling by model version(s) ' + ', '.join(versions) if versions else 'without pre-labels'}.",
        f"- Annotators changed the pre-label in {sum(changed)} of {len(changed)} annotations that had one."
        if changed
        else "- No annotation had a pre-label to compare with.",
        "- Gold labels: " + ", ".join(f"{m} ({n} segments)" for m, n in sorted(methods.items())) + ". "
        "`gold_votes` keeps the vote counts per code.",
        "- Annotator IDs are "
        + ("kept as stored." if keep_annotator_ids else "pseudonymised (annotator_1, annotator_2, ...)."),
        f"- Exported by culturecode {__version__} on {now()}.",
        "",
        "## Columns",
        "",
        "`id`, `text`, `document`, `position`, `speaker`; `gold_codes` (ids), `gold_code_names`, `labels` "
        "(multi-hot in codebook order: " + ", ".join(codebook.code_ids) + "); `gold_method`, `gold_votes` (JSON); "
        "`annotations` (annotator, codes, changed_prelabel, prelabel_version); `n_annotators`, `agreement`, "
        "`exact_agreement`, `prelabel_version`, `split`.",
        "",
        'Load it with `datasets.load_from_disk("hf")`, or read `gold.parquet` / `gold.jsonl` / `gold.csv` '
        "(in the CSV, list columns are JSON strings).",
    ]
    return "\n".join(lines) + "\n"
