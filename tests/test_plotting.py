"""The figure checks can fail: a planted too-wide figure and planted overlapping titles are refused, wrapped panels pass."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from helpers import plotting  # noqa: E402
from helpers.ledger import Ledger  # noqa: E402


@pytest.fixture(autouse=True)
def _theme():
    plotting.set_theme()
    yield
    plt.close("all")


def test_panels_wrap_to_two_a_row_and_drop_the_spare_slot():
    fig, axes = plotting.panels(3, size=(4, 3))
    assert len(axes) == 3 and len(fig.axes) == 3
    assert tuple(fig.get_size_inches()) == (8, 6)
    assert axes[0].get_position().y0 > axes[2].get_position().y1, "the third panel wraps to a second row"


def test_a_three_panel_row_of_paper_width_is_refused():
    fig, axes = plt.subplots(1, 3, figsize=(15.6, 3.8))
    for ax, name in zip(axes, "abc"):
        ax.set(title=name)
    with pytest.raises(plotting.FigureLayoutError, match="px wide"):
        plotting.check_layout(fig, "wide")


def test_a_suptitle_drawn_over_panel_titles_is_refused():
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax in axes:
        ax.set(title="model\noptimal layer 3")
    fig.suptitle("Prototype cosines at each model's optimal layer", y=0.93)
    with pytest.raises(plotting.FigureLayoutError, match="suptitle .* overlaps the title of panel"):
        plotting.check_layout(fig, "crowded")


def test_a_title_over_the_panel_above_is_refused():
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 4), gridspec_kw={"hspace": 0.0})
    top.set(xlabel="relative depth")
    bottom.set_title("a title drawn where the axis label above falls", y=0.7)
    with pytest.raises(plotting.FigureLayoutError, match="axis labels of panel 0"):
        plotting.check_layout(fig, "stacked")


def test_the_same_panels_with_constrained_layout_pass_and_are_stamped(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    fig, axes = plotting.panels(3, size=(4.6, 3.6))
    for ax in axes:
        ax.set(title="model\noptimal layer 3", xlabel="relative depth")
    fig.suptitle("Prototype cosines at each model's optimal layer")
    ledger = Ledger("03_categorical", "ci")
    path = plotting.save_figure(fig, ledger, "fine")
    assert Image.open(path).info.get("Description") == plotting.LAYOUT_CHECKED
    assert ledger.figures == ["results/ci/figures/03_categorical/fine.png"]
