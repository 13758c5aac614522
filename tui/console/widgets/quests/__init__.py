"""The quest list's rows and their model."""
