"""Data sets of the book: Social-Chem-101 moral vectors (chapter 01)."""

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
    moral_vectors,
    polarity,
    profile_moral_data,
    read_socialchem_tsv,
    sample_quotas,
    socialchem_path,
    stratified_sample,
    stratum_of,
    typicality,
    with_vectors,
)

__all__ = [
    "COLUMNS", "DIMENSIONS", "FOUNDATIONS", "TYPICALITY_LEVELS", "DataFormatError", "MoralData", "build_moral_data", "clean",
    "explode_by_foundation", "moral_vectors", "polarity", "profile_moral_data", "read_socialchem_tsv", "sample_quotas",
    "socialchem_path", "stratified_sample", "stratum_of", "typicality", "with_vectors",
]
