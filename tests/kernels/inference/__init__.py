"""Tests of the inference kernel."""
