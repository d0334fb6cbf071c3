"""The report as JSON, Markdown and one self-contained HTML page (plots inlined as base64 PNG).

Jinja2 autoescaping is on for the HTML, so transcript text and annotator names cannot inject markup.
"""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

if "ipykernel" not in sys.modules:  # a notebook keeps its inline backend (pipeline.api draws figures there)
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.agreement.drift import (  # noqa: E402
    HEADER,
    METHOD,
    WEEK_HEADER,
    drift_markdown,
    drift_rows,
    plot_weeks,
    week_markdown,
    week_rows,
)
from pipeline.agreement.plots import alpha_figure  # noqa: E402

COLUMNS = [
    ("percent_agreement", "% agr."),
    ("cohen_kappa_mean", "Cohen κ (mean)"),
    ("fleiss_kappa", "Fleiss κ"),
    ("krippendorff_alpha", "Kripp. α"),
    ("gwet_ac1", "Gwet AC1"),
]


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "undefined"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"


# --------------------------------------------------------------------------- plots


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)  # layout="constrained": one draw, unlike bbox_inches="tight"
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_alpha(report: dict[str, Any]) -> str:
    return _png(alpha_figure(report))


def plot_heatmap(report: dict[str, Any]) -> str:
    names = report["pairwise_kappa"]["annotators"]
    matrix = np.array(
        [[np.nan if v is None else v for v in row] for row in report["pairwise_kappa"]["matrix"]], dtype=float
    )
    size = 1.2 + 0.6 * len(names)
    fig, ax = plt.subplots(layout="constrained", figsize=(size + 1.5, size))
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdYlGn")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="Cohen's kappa")
    return _png(fig)


def plot_confusion(report: dict[str, Any]) -> str | None:
    codes = [c for c in report["codes"] if "confusion" in report["codes"][c]]
    if not codes:
        return None
    fig, ax = plt.subplots(layout="constrained", figsize=(7, 0.35 * len(codes) + 1.2))
    left = np.zeros(len(codes))
    for key, colour in (("both_present", "tab:green"), ("split", "tab:red"), ("both_absent", "lightgrey")):
        values = np.array([report["codes"][c]["confusion"][key] for c in codes], dtype=float)
        ax.barh(codes, values, left=left, color=colour, label=key.replace("_", " "))
        left += values
    ax.invert_yaxis()
    ax.set_xlabel("annotator-pair decisions on shared items")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def plot_rounds(report: dict[str, Any]) -> str | None:
    rounds = report["rounds"]
    if not rounds:
        return None
    names = list(rounds)
    fig, ax = plt.subplots(layout="constrained", figsize=(6, 3))
    for key, marker in (("mean_alpha", "o"), ("exact_match", "s")):
        values = [np.nan if rounds[n][key] is None else rounds[n][key] for n in names]
        ax.plot(range(len(names)), values, marker=marker, label=key.replace("_", " "))
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(min(0, ax.get_ylim()[0]), 1.05)
    ax.set_ylabel("agreement")
    ax.set_xlabel("annotation round (pre-label model version)")
    ax.legend(fontsize=8)
    return _png(fig)


# --------------------------------------------------------------------------- documents


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n"


def overall_markdown(o: dict[str, Any]) -> list[str]:
    """The coefficients over the whole label set, one bullet each (with its band, or why it is undefined)."""
    lines = ["", "## Over the whole label set", ""]
    for key, value in o.items():
        if isinstance(value, (float, int)) or value is None:
            if key.startswith(("n_", "krippendorff_alpha_ci", "undefined_reason")):
                continue
            band = o["interpretation"].get(key)
            lines.append(
                f"- {key}: {fmt(value)}"
                + (f" ({band})" if band and value is not None else "")
                + (f" -- {o['undefined_reasons'][key]}" if value is None and key in o["undefined_reasons"] else "")
            )
    return lines


def models_markdown(report: dict[str, Any]) -> list[str]:
    """Each model version as an extra rater: its mean Cohen's kappa with each annotator per code."""
    if not report["models"]:
        return []
    lines = ["", "## Models as an extra rater (mean Cohen's kappa with each annotator)", ""]
    lines += ["| model | " + " | ".join(report["codes"]) + " |", "|" + "---|" * (len(report["codes"]) + 1)]
    for version, m in report["models"].items():
        lines.append(
            f"| {version} | " + " | ".join(fmt(m["codes"][c]["cohen_kappa_mean"]) for c in report["codes"]) + " |"
        )
    return lines


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Inter-annotator agreement ({report.get('generated_at', '')})",
        "",
        f"{report['n_items']} items, {report['n_annotators']} annotators "
        f"({', '.join(report['annotators'])}). {report['summary']['text']}",
        "",
        f"Note: {report['definitions']['percent_agreement']}. Kappa bands: Landis & Koch (1977); "
        f"alpha: >= .800 reliable, >= .667 tentative. CIs: {report['bootstrap']['replicates']} bootstrap "
        f"replicates over items (seed {report['bootstrap']['seed']}).",
        "",
        "## Per code (each code as a yes/no decision)",
        "",
        "| code | " + " | ".join(h for _, h in COLUMNS) + " | α 95% CI | units | pairable values | undefined because |",
        "|" + "---|" * (len(COLUMNS) + 5),
    ]
    for code, s in report["codes"].items():
        cells = [
            f"{fmt(s[k])} ({s['interpretation'][k]})" if s["interpretation"][k] and s[k] is not None else fmt(s[k])
            for k, _ in COLUMNS
        ]
        lines.append(
            f"| {code} | " + " | ".join(cells) + f" | {fmt_ci(s['krippendorff_alpha_ci'])} | "
            f"{s['n_units']} | {s['n_pairable_values']} | {s['undefined_reason'] or ''} |"
        )
    lines += overall_markdown(report["overall"])
    lines += models_markdown(report)
    lines += admission_markdown(report.get("admission") or {})
    lines += anchoring_markdown(report.get("anchoring"))
    lines += drift_markdown(report.get("drift"))
    lines += week_markdown(report.get("drift"))
    lines += versions_markdown(report.get("codebook_versions"))
    if report["rounds"]:
        lines += ["", "## Per annotation round", "", "| round | items | mean α | exact match |", "|---|---|---|---|"]
        for name, r in report["rounds"].items():
            lines.append(f"| {name} | {r['n_items']} | {fmt(r['mean_alpha'])} | {fmt(r['exact_match'])} |")
    return "\n".join(lines) + "\n"


ADMISSION_NOTE = (
    "Per code, Cohen's kappa between the model's decisions and human labels on segments it did not train "
    "on, with a 95% bootstrap CI; only admitted codes are pre-ticked in Label Studio, the others appear "
    "as an unticked hint."
)


def versions_markdown(rows: list[dict[str, Any]] | None) -> list[str]:
    """The per-version table for the Markdown report (nothing when there is one version)."""
    if not rows:
        return []
    lines = ["", "## Agreement per codebook version", "", "| codebook | version | code | alpha | 95% CI | units |"]
    lines.append("|---|---|---|---|---|---|")
    for row in rows:
        for code, c in row["codes"].items():
            cells = [
                row["hash"],
                row["version"],
                code,
                fmt(c["krippendorff_alpha"]),
                fmt_ci(c["krippendorff_alpha_ci"]),
            ]
            lines.append("| " + " | ".join([*cells, str(c["n_pairable_units"])]) + " |")
    return lines


def admission_markdown(tables: dict[str, Any]) -> list[str]:
    """The admission section: one table per current model version."""
    if not tables:
        return []
    lines = ["", "## Admission: which codes each model may pre-tick", "", ADMISSION_NOTE]
    for version, t in tables.items():
        bar = f"kappa >= {t['min_kappa']:.2f} on >= {t['min_evidence']} human positives and negatives"
        admitted = ", ".join(t["admitted"]) or "none"
        lines += ["", f"### {version} ({t['kind']}): admitted {admitted} ({bar})", ""]
        lines += ["| code | kappa | 95% CI | n | positives | admitted | from | reason |", "|" + "---|" * 8]
        for r in t["rows"]:
            ci = fmt_ci([r["ci_low"], r["ci_high"]] if r["ci_low"] is not None else None)
            yes = "yes" if r["admitted"] else "no"
            lines.append(
                f"| {r['code']} | {fmt(r['kappa'])} | {ci} | {r['n']} | {r['positives']} | {yes} | "
                f"{r['source']} | {r['reason']} |"
            )
    return lines


ANCHORING_STATS = [
    ("positive_rate", "positive rate"),
    ("krippendorff_alpha", "human-human α"),
    ("model_kappa", "model-human κ"),
]


def fmt_side(side: dict[str, Any]) -> str:
    """'value [low, high]', or 'undefined (why)'."""
    if side["value"] is None:
        return f"undefined ({side['reason']})" if side.get("reason") else "undefined"
    return f"{side['value']:.3f} {fmt_ci(side['ci'])}"


def fmt_shift(diff: dict[str, Any]) -> str:
    """'0.012: shifted, assisted higher', '0.40: no', or '-' when the difference is undefined."""
    if diff.get("p_adjusted") is None:
        return "-"
    verdict = f"shifted, {diff['direction']}" if diff.get("shifted") else "no"
    return f"{diff['p_adjusted']:.3g}: {verdict}"


def shift_summary(check: dict[str, Any]) -> str:
    """One sentence: the figures shifted beyond chance after the multiplicity adjustment, with their direction."""
    shifts = check.get("shifts")
    if shifts is None:  # a report written before the adjustment
        shifted = ", ".join(check.get("shifted") or []) or "none"
        return f"Codes whose blind and assisted figures differ beyond chance: {shifted}."
    method = check.get("multiplicity", "adjusted for multiple comparisons")
    if not shifts:
        return f"No figure differs between blind and assisted segments beyond chance ({method})."
    listed = "; ".join(f"{s['code']} {s['figure'].replace('_', ' ')}: {s['direction']}" for s in shifts)
    return f"Shifted beyond chance ({method}): {listed}."


def anchoring_markdown(check: dict[str, Any] | None) -> list[str]:
    """The anchoring section: blind against assisted segments, per code (pipeline/agreement/anchoring.py)."""
    if not check:
        return []
    groups = check["groups"]
    lines = [
        "",
        "## Anchoring check: blind against assisted segments",
        "",
        f"{check['blind_fraction']:.0%} of segments were pushed blind (no pre-labels): "
        f"{groups['blind']['n_items']} blind and {groups['assisted']['n_items']} assisted segment(s) coded "
        f"(pre-labels from {check['model_version'] or 'no model'}); left out: "
        f"{check['left_out']['blind_with_prelabels']} blind annotation(s) made with pre-labels, "
        f"{check['left_out']['unassisted_outside_blind']} other annotation(s) made without. Assisted sample: "
        f"{check.get('assisted_sample', 'every assisted segment')}. {check['note']}",
    ]
    if check.get("reason"):
        return [*lines, "", f"Not computed: {check['reason']}."]
    header = "| code | figure | blind [95% CI] | assisted [95% CI] | blind - assisted [95% CI] | adjusted p |"
    lines += ["", header, "|---" * 6 + "|"]
    for code, stats in check["codes"].items():
        for key, label in ANCHORING_STATS:
            s, diff = stats[key], stats[key]["difference"]
            lines.append(
                f"| {code} | {label} | {fmt_side(s['blind'])} | {fmt_side(s['assisted'])} | {fmt_side(diff)} "
                f"| {fmt_shift(diff)} |"
            )
    return [*lines, "", shift_summary(check)]


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Agreement report {{ r.get("generated_at", "") }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}
td:first-child,th:first-child{text-align:left}
.undefined{color:#888;font-style:italic}.band{color:#555;font-size:.8em}
.reliable{background:#e4f5e4}.tentative{background:#fff6d6}.unreliable{background:#fbe3e3}
blockquote{border-left:3px solid #ccc;margin:.3em 0;padding-left:.6em}
</style></head><body>
<h1>Inter-annotator agreement</h1>
<p id="meta">{{ r.n_items }} items, {{ r.n_annotators }} annotators ({{ r.annotators|join(", ") }});
{{- " generated " ~ r.get("generated_at", "") }}
{% if r.get("source") %} from {{ r.source }}{% endif %}.</p>
<p id="summary"><strong>Summary.</strong> {{ r.summary.text }}</p>
<p class="band">{{ r.definitions.percent_agreement|capitalize }}. Kappa bands: {{ r.definitions.kappa_bands }};
{{ r.definitions.alpha_bands }}. Confidence intervals: {{ r.bootstrap.replicates }} bootstrap replicates over items,
{{- " seed " ~ r.bootstrap.seed }}.</p>
<h2>Per code</h2>
<table id="per-code"><tr><th>code</th>{% for _, h in columns %}<th>{{ h }}</th>{% endfor -%}
<th>α 95% CI</th><th>units</th><th>pairable values</th></tr>
{% for code, s in r.codes.items() %}<tr class="{{ s.interpretation.krippendorff_alpha }}"><td title="{{ s.name }}">
{{- code }}</td>
{% for k, _ in columns %}{% if s[k] is none %}<td class="undefined" title="{{ s.undefined_reasons[k] }}">undefined</td>
{% else -%}
<td>{{ fmt(s[k]) }}{% if s.interpretation[k] %} <span class="band">{{ s.interpretation[k] }}</span>{% endif %}</td>
{%- endif %}{% endfor %}
<td>{{ fmt_ci(s.krippendorff_alpha_ci) }}</td><td>{{ s.n_units }}</td><td>{{ s.n_pairable_values }}</td></tr>
{% if s.undefined_reason %}<tr><td></td><td colspan="{{ columns|length + 3 }}" class="undefined">
{{- s.undefined_reason }}</td></tr>{% endif %}
{% endfor %}</table>
<img alt="alpha per code" src="data:image/png;base64,{{ plots.alpha }}">
<h2>Over the whole label set</h2><ul id="overall">
{% for k, v in r.overall.items()
   if (v is number or v is none) and not k.startswith(("n_", "undefined_reason", "krippendorff_alpha_ci")) %}
<li>{{ k }}: {% if v is none %}<span class="undefined">undefined ({{ r.overall.undefined_reasons.get(k, "") }})</span>
{%- else %}{{ fmt(v) }} <span class="band">{{ r.overall.interpretation.get(k) or "" }}</span>{% endif %}</li>
{%- endfor %}</ul>
<h2>Annotator by annotator</h2><img alt="kappa heatmap" src="data:image/png;base64,{{ plots.heatmap }}">
{% if plots.confusion -%}
<h2>Decisions per code</h2><img alt="confusion counts" src="data:image/png;base64,{{ plots.confusion }}">{% endif %}
{% if plots.rounds -%}
<h2>Per annotation round</h2><img alt="agreement per round" src="data:image/png;base64,{{ plots.rounds }}">{% endif %}
{% if r.models %}<h2>Models as an extra rater</h2><table id="models"><tr><th>model</th>
{%- for c in r.codes %}<th>{{ c }}</th>{% endfor %}</tr>
{% for v, m in r.models.items() %}<tr><td>{{ v }}</td>
{%- for c in r.codes %}<td>{{ fmt(m.codes[c].cohen_kappa_mean) }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
{% if r.get("admission") %}<h2>Admission: which codes each model may pre-tick</h2>
<p class="band">{{ admission_note }}</p>
{% for v, t in r.admission.items() %}<h3>{{ v }} ({{ t.kind }}): admitted {{ t.admitted|join(", ") or "none" }}</h3>
<table class="admission"><tr><th>code</th><th>kappa</th><th>95% CI</th><th>n</th><th>positives</th>
<th>admitted</th><th>from</th><th>reason</th></tr>
{% for row in t.rows %}<tr class="{{ 'reliable' if row.admitted else 'unreliable' }}"><td>{{ row.code }}</td>
<td>{{ fmt(row.kappa) }}</td><td>{{ fmt_ci([row.ci_low, row.ci_high] if row.ci_low is not none else none) }}</td>
<td>{{ row.n }}</td><td>{{ row.positives }}</td><td>{{ "yes" if row.admitted else "no" }}</td>
<td>{{ row.source }}</td><td style="text-align:left">{{ row.reason }}</td></tr>{% endfor %}</table>
{% endfor %}{% endif %}
{% if r.get("anchoring") %}{% set a = r.anchoring %}<h2>Anchoring check: blind against assisted segments</h2>
<p id="anchoring-groups">{{ "%.0f"|format(a.blind_fraction * 100) }}% of segments were pushed blind (no pre-labels):
{{ a.groups.blind.n_items }} blind and {{ a.groups.assisted.n_items }} assisted segment(s) coded (pre-labels from
{{ a.model_version or "no model" }}); left out: {{ a.left_out.blind_with_prelabels }} blind annotation(s) made with
pre-labels, {{ a.left_out.unassisted_outside_blind }} other annotation(s) made without. Assisted sample:
{{ a.get("assisted_sample", "every assisted segment") }}.</p>
<p class="band">{{ a.note }}</p>
{% if a.get("reason") %}<p class="undefined">Not computed: {{ a.reason }}.</p>{% else %}
<table id="anchoring"><tr><th>code</th><th>figure</th><th>blind [95% CI]</th><th>assisted [95% CI]</th>
<th>blind − assisted [95% CI]</th><th>adjusted p</th></tr>
{% for code, stats in a.codes.items() %}{% for key, label in anchoring_stats %}{% set s = stats[key] %}
<tr class="{{ 'unreliable' if s.difference.get('shifted') else '' }}"><td>{{ code }}</td><td>{{ label }}</td>
<td>{{ fmt_side(s.blind) }}</td><td>{{ fmt_side(s.assisted) }}</td><td>{{ fmt_side(s.difference) }}</td>
<td>{{ fmt_shift(s.difference) }}</td></tr>
{% endfor %}{% endfor %}</table>
<p>{{ shift_summary(a) }}</p>{% endif %}
{% endif %}
{% if r.get("drift") and r.drift.annotators %}<h2>Coder drift (batches of {{ r.drift.batch_size }} segments)</h2>
<p class="band">{{ drift_method }}</p>
<table id="drift"><tr>{% for h in drift_header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in drift_rows(r.drift) %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</table>{% endif %}
{% if r.get("drift") and r.drift.get("weeks") %}<h2>Coder drift by ISO week</h2>
{% if plots.weeks %}<img alt="kappa with gold and with the model by week"
src="data:image/png;base64,{{ plots.weeks }}">{% endif %}
<table id="drift-weeks"><tr>{% for h in week_header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in week_rows(r.drift) %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</table>{% endif %}
{% if r.get("codebook_versions") %}<h2>Agreement per codebook version</h2>
<table id="codebook-versions"><tr><th>codebook</th><th>version</th><th>annotations</th><th>code</th><th>Kripp. α</th>
<th>95% CI</th><th>pairable units</th></tr>
{% for v in r.codebook_versions %}{% for code, c in v.codes.items() %}<tr><td>{{ v.hash }}</td><td>{{ v.version }}</td>
<td>{{ v.annotations }}</td><td>{{ code }}</td><td>{{ fmt(c.krippendorff_alpha) }}</td>
<td>{{ fmt_ci(c.krippendorff_alpha_ci) }}</td><td>{{ c.n_pairable_units }}</td></tr>{% endfor %}{% endfor %}
</table>{% endif %}
{% if r.disagreements -%}
<h2>Most contested items</h2>
{#- #}<table id="disagreements"><tr><th>item</th><th>score</th><th>split votes</th><th>text</th></tr>
{% for d in r.disagreements %}<tr><td>{{ d.item }}</td><td>{{ fmt(d.score) }}</td><td>
{%- for c, n in d.split_votes.items() %}{{ c }} {{ n }}/{{ d.n_annotators }} {% endfor %}</td>
<td style="text-align:left"><blockquote>{{ d.get("text") or "" }}</blockquote></td></tr>{% endfor %}</table>{% endif %}
</body></html>
"""


def to_html(report: dict[str, Any]) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    plots = {
        "alpha": plot_alpha(report),
        "heatmap": plot_heatmap(report),
        "confusion": plot_confusion(report),
        "rounds": plot_rounds(report),
        "weeks": plot_weeks(report.get("drift")),
    }
    return env.from_string(TEMPLATE).render(
        r=report,
        plots=plots,
        columns=COLUMNS,
        fmt=fmt,
        fmt_ci=fmt_ci,
        admission_note=ADMISSION_NOTE,
        anchoring_stats=ANCHORING_STATS,
        fmt_shift=fmt_shift,
        shift_summary=shift_summary,
        drift_method=METHOD,
        drift_header=HEADER,
        drift_rows=drift_rows,
        week_header=WEEK_HEADER,
        week_rows=week_rows,
        fmt_side=fmt_side,
    )


def write_reports(report: dict[str, Any], out_dir: Path, stem: str) -> dict[str, Path]:
    """reports/<stem>.{json,md,html}; a rerun on the same day replaces the files."""
    from pipeline.outputs import writable_folder, write_text

    writable_folder(out_dir, "agreement report")
    texts = {"json": to_json(report), "md": to_markdown(report), "html": to_html(report)}  # render all, then write
    paths = {ext: out_dir / f"{stem}.{ext}" for ext in texts}
    for ext, text in texts.items():
        write_text(paths[ext], text, "agreement report")
    return paths
