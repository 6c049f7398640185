"""Configurations shipped with the package (the paper's digits config is the default)."""
