"""Paper-vs-this-run boxes: the paper's number beside the one this run computed, with the reason they differ; and
chapter 11's comparison keys, which the report (chapter 14) reads back."""

from __future__ import annotations

import dataclasses
import re

import pandas as pd
from IPython.display import Markdown

from helpers import reference


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One row of a paper-vs-this-run box."""

    quantity: str
    paper: str
    this_run: str
    note: str = ""


def fmt(value: object) -> str:
    """Numbers with thousands separators and at most 3 decimals (2 significant digits below 0.001); else text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) and 0 < abs(value) < 1e-3:
        return f"{value:.2g}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def comparison(quantity: str, paper: object, this_run: object, note: str = "") -> Comparison:
    """A row with both values formatted for display."""
    return Comparison(quantity, fmt(paper), fmt(this_run), note)


def paper_vs_run(rows: list[Comparison], profile: str) -> pd.DataFrame:
    """The box as a table: quantity, the paper's value, this run's value (profile named) and why they differ."""
    return pd.DataFrame(
        [[r.quantity, r.paper, r.this_run, r.note] for r in rows],
        columns=["quantity", "paper", f"this run ({profile})", "why they differ"],
    ).set_index("quantity")


def comparison_key(judge: str, layer: int, alpha: float, condition: str) -> str:
    """Chapter 11's ledger key of one judged comparison (read back by `parse_comparison_key`)."""
    return f"{judge} | layer {layer} | alpha {alpha} | {condition}"


_COMPARISON = re.compile(r"^(?P<judge>.+) \| layer (?P<layer>\d+) \| alpha (?P<alpha>\S+) \| (?P<condition>.+)$")


def parse_comparison_key(key: str) -> dict[str, str]:
    """The judge, layer, alpha and condition of a `comparison_key`."""
    parsed = _COMPARISON.match(key)
    if parsed is None:
        raise ValueError(f"comparisons key {key!r} is not 'judge | layer L | alpha a | condition'")
    return parsed.groupdict()


def machine_sensitive(chapter: str, profile: str) -> pd.DataFrame | Markdown:
    """The metrics of a chapter that another machine may not reproduce to three significant digits (value ± the
    band its test allows), from the committed reference's builds; a sentence where there are none to show."""
    entry = reference.read_reference(chapter, profile)
    if entry is None or not reference.other_metrics(entry):
        return Markdown(f"The reference of profile `{profile}` was not built on a second machine: how far another "
                        "machine moves this chapter's numbers is not measured.")
    rows = reference.sensitive_in(chapter, profile)
    if not rows:
        return Markdown("Every number of this chapter held to three significant digits on the other machines.")
    return pd.DataFrame(rows).set_index("metric")
