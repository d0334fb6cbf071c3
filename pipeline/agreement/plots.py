"""Agreement figures drawn with matplotlib's object API (no pyplot, no backend chosen here), so that the same
figure goes into the HTML report (`render.plot_alpha`) and shows inline in a notebook (`pipeline.api`)."""

from __future__ import annotations

from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure


def alpha_figure(report: dict[str, Any], *, ax: Axes | None = None) -> Figure:
    """Krippendorff's alpha per code with its 95% bootstrap CI, and lines at .667 and .800; drawn on `ax` when given,
    else on a new figure sized to the number of codes."""
    codes = list(report["codes"])
    if ax is None:
        fig = Figure(layout="constrained", figsize=(7, 0.35 * len(codes) + 1.2))
        ax = fig.subplots()
    for y, code in enumerate(codes):
        stats = report["codes"][code]
        value, ci = stats["krippendorff_alpha"], stats["krippendorff_alpha_ci"]
        if value is None:
            ax.text(0, y, "undefined", va="center", fontsize=8, color="grey")
            continue
        err = [[value - ci[0]], [ci[1] - value]] if ci else None
        ax.errorbar(value, y, xerr=err, fmt="o", color="tab:blue", capsize=3)
    for x, style in ((0.667, ":"), (0.8, "--")):
        ax.axvline(x, color="grey", linestyle=style, linewidth=1)
    ax.set_yticks(range(len(codes)), codes)
    ax.invert_yaxis()
    ax.set_xlim(min(-0.1, ax.get_xlim()[0]), 1.05)
    ax.set_xlabel("Krippendorff's alpha (95% bootstrap CI); lines at .667 and .800")
    figure = ax.get_figure()
    assert isinstance(figure, Figure)
    return figure
