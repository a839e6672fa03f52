"""Helpers for the Moral Indifference reproducibility book: one module per concern, each chapter calls them."""

__version__ = "0.1.0"
