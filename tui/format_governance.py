"""Governance in words, the same in the command line and the console: windows and tallies."""

from __future__ import annotations

from core.api.governance import OptionTally, Proposal
from tui.format import date_time, duration


def window_text(proposal: Proposal, now: float) -> str:
    """``opens in 2h 05m``, ``4h 12m left``, or ``closed 2026-12-01 10:00``."""
    state = proposal.state_at(now)
    if state == "upcoming":
        return f"opens in {duration(proposal.start_ts - now)}"
    if state == "open":
        return f"{duration(proposal.end_ts - now)} left"
    return f"closed {date_time(proposal.end_ts)}"


def share(option: OptionTally, proposal: Proposal) -> float:
    """The option's share of the weight cast (0 when none was); display only."""
    return option.weight / proposal.total_weight if proposal.total_weight else 0.0


def voters_text(count: int) -> str:
    return f"{count} voter" if count == 1 else f"{count} voters"
