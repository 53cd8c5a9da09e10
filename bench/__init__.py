"""Benchmarks of the heart-risk engine: ``python -m bench`` (see bench/README.md)."""
