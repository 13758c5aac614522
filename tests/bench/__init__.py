"""Benchmark scripts (run as modules; not collected as tests)."""
