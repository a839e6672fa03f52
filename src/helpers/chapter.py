"""What every diagnosis chapter starts with: its profile, ledger, figure theme, moral sample and activations."""

from __future__ import annotations

import dataclasses

import pandas as pd

from helpers import activations, plotting
from helpers.activations import ActivationStore
from helpers.data import MoralData, profile_moral_data
from helpers.ledger import Ledger
from helpers.profiles import Profile, load_profile


@dataclasses.dataclass
class Chapter:
    """A running chapter: the profile's knobs, its ledger, the diagnosis sample and one activation cache per model."""

    profile: Profile
    ledger: Ledger
    moral: MoralData
    stores: dict[str, ActivationStore]

    @property
    def sample(self) -> pd.DataFrame:
        """The stratified diagnosis sample of chapter 01."""
        return self.moral.sample


def start(chapter: str, profile: str, seed: int = 0, stores: bool = True) -> Chapter:
    """Load the profile, open the chapter's ledger, set the figure theme, build the sample, open the caches.

    Chapters that do not read the diagnosis sample's activations (the SAE chapters) pass `stores=False`.
    """
    loaded = load_profile(profile)
    plotting.set_theme()
    moral = profile_moral_data(loaded)
    stores = activations.profile_stores(loaded, activations.prompts(moral.actions, loaded.template)) if stores else {}
    print(f"profile {loaded.name}: {len(moral.sample):,} sample rows, models {list(stores) or loaded.models}")
    return Chapter(loaded, Ledger(chapter, loaded.name, seed=seed), moral, stores)
