"""StderrLog: levels of untagged lines (tracebacks, panics) and one record per line."""

from __future__ import annotations

import logging

import pytest

from pyvider_rpcplugin_sync._host.stdio import StderrLog

pytestmark = pytest.mark.timeout(10)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.seen: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.levelno, record.getMessage()))


@pytest.fixture
def collected() -> tuple[StderrLog, Collect]:
    target = logging.getLogger("test.stderr_log")
    target.handlers.clear()
    target.propagate = False
    target.setLevel(1)
    handler = Collect()
    target.addHandler(handler)
    return StderrLog(target), handler


CHAINED = [
    "Traceback (most recent call last):",
    '  File "plugin.py", line 3, in <module>',
    "    int('x')",
    "ValueError: invalid literal for int() with base 10: 'x'",
    "",
    "During handling of the above exception, another exception occurred:",
    "",
    "Traceback (most recent call last):",
    '  File "plugin.py", line 5, in <module>',
    "KeyError: 'y'",
]


def test_a_chained_traceback_is_error_and_the_next_line_is_not(
    collected: tuple[StderrLog, Collect],
) -> None:
    log, handler = collected
    for line in ["starting", *CHAINED, "after the crash"]:
        log(line)
    levels = dict((text, level) for level, text in handler.seen)
    assert levels["starting"] == logging.DEBUG
    for line in CHAINED:
        if line:
            assert levels[line] == logging.ERROR, line
    assert levels["after the crash"] == logging.DEBUG


def test_a_go_panic_makes_the_rest_errors(collected: tuple[StderrLog, Collect]) -> None:
    log, handler = collected
    for line in ["ok", "panic: runtime error", "goroutine 1 [running]:", "main.main()"]:
        log(line)
    assert [level for level, _ in handler.seen] == [logging.DEBUG] + [logging.ERROR] * 3


def test_a_line_from_both_sources_is_logged_once_in_either_order(
    collected: tuple[StderrLog, Collect],
) -> None:
    log, handler = collected
    log("a")
    log.from_stdio("a")
    log.from_stdio("b")
    log("b")
    log("a")  # a second "a", not yet seen over the stream
    assert [text for _, text in handler.seen] == ["a", "b", "a"]
    log.from_stdio("a")  # its twin
    assert [text for _, text in handler.seen] == ["a", "b", "a"]


def test_lines_only_one_source_sends_are_all_logged(
    collected: tuple[StderrLog, Collect],
) -> None:
    log, handler = collected
    for n in range(1000):  # far past the pending window: nothing is held back or lost
        log.from_stdio(f"go plugin line {n % 7}")
    assert len(handler.seen) == 1000


def test_hclog_lines_keep_their_level(collected: tuple[StderrLog, Collect]) -> None:
    log, handler = collected
    log('{"@level":"warn","@message":"careful","@timestamp":"2026-01-02T03:04:05.000000Z"}')
    assert handler.seen == [(logging.WARNING, "careful")]
