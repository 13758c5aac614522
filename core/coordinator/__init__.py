"""The network operator's coordinator: scheduling, verification, ledger, game, publishing."""
