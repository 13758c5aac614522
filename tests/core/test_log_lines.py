"""Log lines quote peers' text: neither form (human, JSON) lets a control character through."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from core.runtime.headless import configure_logging

FORGED = "mallory\n2026-01-01 00:00:00 INFO    node honest registered\x1b]0;pwned\x07\u202e"


@pytest.mark.parametrize("json_lines", [False, True])
def test_a_forged_name_stays_in_its_own_log_line(json_lines: bool) -> None:
    stream = io.StringIO()
    configure_logging(json_lines=json_lines, stream=stream)
    log = logging.getLogger("omnitensor.coordinator")
    log.info("node %s (%s) registered", FORGED, "abc")
    try:
        raise ValueError(f"bad name {FORGED}")
    except ValueError:
        log.exception("hello from %s refused", FORGED)
    text = stream.getvalue()
    for char in ("\x1b", "\x07", "\u202e"):
        assert char not in text
    lines = text.splitlines()
    if json_lines:
        assert len(lines) == 2
        first = json.loads(lines[0])
        assert first["message"] == f"node {FORGED} (abc) registered"
    else:
        assert lines[0].endswith(
            "INFO    node mallory\\n2026-01-01 00:00:00 INFO    node honest "
            "registered\\x1b]0;pwned\\x07\\u202e (abc) registered"
        )
        # The traceback keeps its own lines; the quoted name in it does not add one.
        assert lines[-1].startswith("ValueError: bad name mallory\\n2026-01-01")
        # Only the two real records start a line with a timestamp.
        assert len([line for line in lines if re.match(r"\d{4}-\d\d-\d\d ", line)]) == 2
