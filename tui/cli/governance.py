"""Governance from the shell: ``propose`` (the network's operator), ``proposals``, ``vote``.

``propose`` writes the coordinator's store (``--data-dir`` is the coordinator's), like
``announce``; the running coordinator publishes the proposal at its next board tick.
``proposals`` and ``vote`` go through a node session, like ``jobs``. docs/governance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime

from core.api.commands import CastVote, GetProposals
from core.api.governance import Proposal, ProposalList, resolve_proposal
from core.config import Config
from core.errors import CommandError, ConfigError
from core.game.governance import GovernanceError, resolve_option
from core.textsafe import printable
from tui.cli.network import node_session
from tui.cli.operator import coordinator_dir
from tui.cli.output import print_json
from tui.format import bar, date_time
from tui.format_governance import share, voters_text, window_text

BAR = 20


def add_governance_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    propose = sub.add_parser(
        "propose", parents=[common], help="(network operator) put a proposal to the nodes' vote"
    )
    propose.add_argument("--title", required=True, help="a short title (up to 64 characters)")
    propose.add_argument("--text", default="", help="what is proposed (up to 2000 characters)")
    propose.add_argument(
        "--option",
        dest="options",
        action="append",
        default=[],
        metavar="OPTION",
        help="a choice; give two or more (e.g. --option Yes --option No)",
    )
    propose.add_argument("--start", help="ISO time the vote opens (default: now)")
    propose.add_argument("--hours", type=float, required=True, help="how long the vote is open")
    sub.add_parser("proposals", parents=[common], help="governance proposals and their tallies")
    vote = sub.add_parser("vote", parents=[common], help="vote on a proposal (again to change it)")
    vote.add_argument("proposal", metavar="PROPOSAL", help="its id, number or a unique prefix")
    vote.add_argument("option", metavar="OPTION", help="one of its options (any case)")


def run(args: argparse.Namespace, config: Config, as_json: bool) -> int | None:
    """Run a governance command; None when ``args`` names another command."""
    if args.command == "propose":
        return asyncio.run(_propose(args))
    if args.command == "proposals":
        return asyncio.run(_proposals(config, as_json))
    if args.command == "vote":
        return asyncio.run(_vote(config, args.proposal, args.option, as_json))
    return None


async def _propose(args: argparse.Namespace) -> int:
    from core.coordinator.operator import NoCoordinatorStore, propose

    start = time.time()
    if args.start:
        try:
            start = datetime.fromisoformat(args.start.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise ConfigError(f"propose: bad --start {args.start!r} (ISO time)") from None
    try:
        proposal = await propose(
            coordinator_dir(args),
            title=args.title,
            text=args.text,
            options=args.options,
            start=start,
            hours=args.hours,
        )
    except NoCoordinatorStore as exc:
        raise ConfigError(f"propose: {exc} (use --data-dir)") from None
    except GovernanceError as exc:
        raise ConfigError(f"propose refused: {exc}") from None
    print(
        printable(
            f"proposed {proposal.proposal_id} {proposal.title!r}: "
            f"{' / '.join(proposal.options)}; voting {date_time(proposal.start)} to "
            f"{date_time(proposal.end)}"
        )
    )
    return 0


async def _proposals(config: Config, as_json: bool) -> int:
    async with node_session(config) as client:
        listing = await client.command(GetProposals())
    if as_json:
        print_json(listing)
        return 0
    print(proposals_text(listing, time.time()))
    return 0


def proposals_text(listing: ProposalList, now: float) -> str:
    """The proposals, newest first, each with its options' weights as bars."""
    lines = [f"your governance weight: {listing.weight}"]
    if listing.weight == 0:
        lines[0] += " (earned with season awards: you cannot vote yet)"
    if not listing.proposals:
        lines.append("no proposals")
    for proposal in listing.proposals:
        lines.append("")
        lines.extend(proposal_lines(proposal, now))
    return "\n".join(printable(line) for line in lines)


def proposal_lines(proposal: Proposal, now: float) -> list[str]:
    state = "final" if proposal.final else proposal.state_at(now)
    mine = f"  (your vote: {proposal.your_vote})" if proposal.your_vote else ""
    when = window_text(proposal, now)
    lines = [f"{proposal.proposal_id}  {state:<8} {proposal.title}  ·  {when}{mine}"]
    if proposal.text:
        lines.extend(f"    {line}" for line in proposal.text.splitlines())
    width = max(len(o.option) for o in proposal.options)
    for option in proposal.options:
        fraction = share(option, proposal)
        mark = "*" if option.option == proposal.your_vote else " "
        lines.append(
            f"  {mark} {option.option:<{width}}  {bar(fraction, BAR)} {fraction:4.0%}  "
            f"weight {option.weight} ({voters_text(option.voters)})"
        )
    return lines


async def _vote(config: Config, given_proposal: str, given_option: str, as_json: bool) -> int:
    async with node_session(config) as client:
        listing = await client.command(GetProposals())
        proposal = resolve_proposal(listing.proposals, given_proposal)
        try:
            option = resolve_option([o.option for o in proposal.options], given_option)
        except GovernanceError as exc:
            raise CommandError(f"{proposal.proposal_id}: {exc}") from None
        cast = await client.command(CastVote(proposal_id=proposal.proposal_id, option=option))
    if as_json:
        print_json(cast)
        return 0
    print(printable(cast.message))
    return 0
