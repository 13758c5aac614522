"""Leaderboard tables that page what they show."""
