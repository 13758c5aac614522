"""Benchmark progress."""
