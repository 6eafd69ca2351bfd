"""Benchmarks of the whole system."""
