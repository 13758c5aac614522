"""The node summary line and multiplier banner."""
