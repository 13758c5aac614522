"""The console's widgets, grouped by feature."""
