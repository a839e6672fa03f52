"""One figure style for the whole book: seaborn theme, colour-blind-safe palettes, saved files for the ledger."""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors
import matplotlib.pyplot as plt
import seaborn as sns

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


def verdict_css(verdict: str) -> str:
    """CSS for a report cell: the verdict's colour as background (white text on the darker ones), else nothing."""
    if verdict not in VERDICT_COLORS:
        return ""
    text = "" if verdict in _DARK_TEXT else "; color: white"
    return f"background-color: {matplotlib.colors.to_hex(VERDICT_COLORS[verdict])}{text}"


def set_theme() -> None:
    """Apply the book's seaborn theme (call once per chapter)."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE,
                  rc={"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "axes.titleweight": "bold"})


def save_figure(fig: plt.Figure, ledger: Ledger, name: str) -> Path:
    """Save `fig` as `results/<profile>/figures/<chapter>/<name>.png` and list it in the chapter's ledger (relative to
    the output root: the book's root, or a run elsewhere's own folder)."""
    path = results_dir(ledger.profile, "figures", ledger.chapter) / f"{name}.png"
    fig.savefig(path)
    ledger.figures.append(path.relative_to(output_root()).as_posix())
    return path


def relative_depth(layer: int, n_layers: int) -> float:
    """Layer index as a fraction of depth (0 = first block, 1 = last), to compare models of different depth."""
    return layer / max(1, n_layers - 1)
