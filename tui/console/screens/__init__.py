"""The console's top-level screens (modes): dashboard, quests, season, boards, wallet, log."""
