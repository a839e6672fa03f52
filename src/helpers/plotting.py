"""One figure style for the whole book: seaborn theme, colour-blind-safe palettes, saved files for the ledger."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.colors
import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from helpers.ledger import Ledger
from helpers.paths import output_root, results_dir

PALETTE = "colorblind"
DIVERGING = "vlag"  # zero-centred diverging map for signed values (pass vmin=-v, vmax=v or center=0)
SEQUENTIAL = "mako"
POLE_COLORS = {"virtue": sns.color_palette(PALETTE)[0], "vice": sns.color_palette(PALETTE)[3],
               "neutral": sns.color_palette(PALETTE)[7]}
# report verdicts, strongest first: blue, sky blue, purple, yellow, vermillion, grey
VERDICT_COLORS = dict(zip(("reproduced", "direction holds", "not discriminating", "inconclusive", "not reproduced",
                           "not testable at this scale"), (sns.color_palette(PALETTE)[i] for i in (0, 9, 4, 8, 3, 7))))
_DARK_TEXT = ("direction holds", "inconclusive")  # light backgrounds keep dark text
DPI = 110  # figure.dpi: the inline image of a figure W inches wide is about W * DPI pixels wide
# Widest image a page shows legibly: the article column is about 800 px, so text is drawn at >= 2/3 of its size.
MAX_WIDTH_PX = 1200
MAX_COLS = 2  # panels per row; more wrap to the next row
LAYOUT_CHECKED = "layout checked: width and titles (helpers.plotting.check_layout)"  # stamped into every saved PNG


class FigureLayoutError(ValueError):
    """A figure the page could not show legibly: too wide, or titles drawn over each other."""


def verdict_css(verdict: str) -> str:
    """CSS for a report cell: the verdict's colour as background (white text on the darker ones), else nothing."""
    if verdict not in VERDICT_COLORS:
        return ""
    text = "" if verdict in _DARK_TEXT else "; color: white"
    return f"background-color: {matplotlib.colors.to_hex(VERDICT_COLORS[verdict])}{text}"


def set_theme() -> None:
    """Apply the book's seaborn theme (call once per chapter)."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE,
                  rc={"figure.dpi": DPI, "savefig.dpi": 150, "savefig.bbox": "tight", "axes.titleweight": "bold"})


def panels(n: int, size: tuple[float, float] = (4.6, 3.6), max_cols: int = MAX_COLS,
           **subplots: object) -> tuple[plt.Figure, list[Axes]]:
    """`n` panels of `size` inches wrapped `max_cols` to a row (constrained layout); slots left over are removed."""
    cols = max(1, min(n, max_cols))
    rows = math.ceil(n / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False,
                             layout="constrained", **subplots)
    axes = list(grid.flat)
    for spare in axes[n:]:
        spare.remove()
    return fig, axes[:n]


def _titles(fig: plt.Figure) -> list[tuple[str, Text]]:
    """Every visible, non-empty title of `fig`: its suptitle and each panel's (left, centre, right) titles."""
    texts = [("suptitle", fig._suptitle)] if fig._suptitle is not None else []
    for i, ax in enumerate(fig.axes):
        texts += [(f"title of panel {i}", t) for t in (ax.title, ax._left_title, ax._right_title)]
    return [(label, t) for label, t in texts if t.get_visible() and t.get_text().strip()]


def check_layout(fig: plt.Figure, name: str) -> None:
    """Raise FigureLayoutError when `fig` would show wider than MAX_WIDTH_PX or any two of its titles (or a title and
    another panel's axis labels) overlap."""
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    width = fig.get_tightbbox(renderer).width * DPI
    if width > MAX_WIDTH_PX:
        raise FigureLayoutError(f"figure {name!r} is {width:.0f} px wide (at most {MAX_WIDTH_PX}): wrap its panels "
                                f"(plotting.panels, col_wrap) instead of shrinking them to the page")
    titles = _titles(fig)
    labels = [(f"axis labels of panel {i}", t) for i, ax in enumerate(fig.axes)
              for t in (ax.xaxis.label, ax.yaxis.label) if t.get_visible() and t.get_text().strip()]
    boxes = {id(t): t.get_window_extent(renderer) for _, t in titles + labels}
    for i, (label, text) in enumerate(titles):
        for other_label, other in titles[i + 1:] + labels:
            if other.axes is not None and other.axes is text.axes:
                continue
            overlap = Bbox.intersection(boxes[id(text)], boxes[id(other)])
            if overlap is not None and overlap.width > 1 and overlap.height > 1:
                raise FigureLayoutError(f"figure {name!r}: the {label} {text.get_text()!r} overlaps the {other_label} "
                                        f"{other.get_text()!r}")


def save_figure(fig: plt.Figure, ledger: Ledger, name: str) -> Path:
    """Check `fig`'s layout (check_layout), save it as `results/<profile>/figures/<chapter>/<name>.png` and list it in the
    chapter's ledger (relative to the output root: the book's root, or a run elsewhere's own folder)."""
    check_layout(fig, name)
    path = results_dir(ledger.profile, "figures", ledger.chapter) / f"{name}.png"
    fig.savefig(path, metadata={"Description": LAYOUT_CHECKED})
    ledger.figures.append(path.relative_to(output_root()).as_posix())
    return path


def relative_depth(layer: int, n_layers: int) -> float:
    """Layer index as a fraction of depth (0 = first block, 1 = last), to compare models of different depth."""
    return layer / max(1, n_layers - 1)
