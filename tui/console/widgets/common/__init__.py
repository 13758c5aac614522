"""Widgets and helpers every screen uses: chrome, text, unavailable notices."""
