"""Composition roots: the headless node and the one-command local network."""
