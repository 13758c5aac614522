"""The node log view."""
