"""Data sets of the book: Social-Chem-101 moral vectors (chapter 01) and external moral lexicons (03–06)."""

from helpers.data.lexicons import LEXICONS, external_sample, mfd2_sample, moralstrength_sample
from helpers.data.socialchem import (
    COLUMNS,
    DIMENSIONS,
    FOUNDATIONS,
    TYPICALITY_LEVELS,
    DataFormatError,
    MoralData,
    build_moral_data,
    clean,
    explode_by_foundation,
    index_actions,
    leakage,
    moral_vectors,
    neutral_sources,
    polarity,
    profile_moral_data,
    read_socialchem_tsv,
    SPLIT_UNITS,
    sae_splits,
    sample_quotas,
    socialchem_path,
    stratified_sample,
    stratum_of,
    typicality,
    with_vectors,
)

__all__ = [
    "COLUMNS", "DIMENSIONS", "LEXICONS", "external_sample", "FOUNDATIONS", "TYPICALITY_LEVELS", "DataFormatError", "MoralData", "build_moral_data", "clean",
    "explode_by_foundation", "index_actions", "leakage", "mfd2_sample", "moral_vectors", "moralstrength_sample", "neutral_sources", "polarity", "profile_moral_data", "read_socialchem_tsv", "SPLIT_UNITS", "sae_splits", "sample_quotas",
    "socialchem_path", "stratified_sample", "stratum_of", "typicality", "with_vectors",
]
