"""hnm: config-driven experiments with hard-negative strategies for dense retrievers."""

__version__ = "0.1.0"
