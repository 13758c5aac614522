"""GPU cards and their metrics."""
