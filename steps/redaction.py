"""No private key reaches a report or a log of a test run, whatever failed.

A failing step shows what it saw (an assertion's values, an exception's message, the
captured output and log of the test), and a run under DEBUG logs what libraries log:
any of them can hold a private key's PEM, whole, JSON-escaped, or cut (websockets logs
a frame's beginning and end). Here, before anything is written, every log record's
message and traceback, and every test report's failure text and captured sections, lose
each private key's PEM block and any cut piece of one (the base64 run up to an END
line, or from a BEGIN line on). tests/integration/test_secrets_never_leak.py searches a
whole run's output, logs, JUnit and cucumber reports for the keys the run made, with
this off (env SPEC_REDACT_KEYS=0): it judges what the code itself lets out.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from typing import Any

import pytest

MARK = "PRIVATE KEY-----"
REDACTED = "[a private key, redacted]"
_BASE64 = r"[A-Za-z0-9+/=\s\\]*"          # \s and "\n" as text: a PEM inside a repr/JSON
_WHOLE_OR_HEAD = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----" + _BASE64 + r"(?:-----END [A-Z0-9 ]*" + MARK + ")?")
_TAIL = re.compile(_BASE64 + r"-----END [A-Z0-9 ]*" + MARK)


def redact(text: str) -> str:
    """`text` without private keys (see the module doc)."""
    if MARK not in text:
        return text
    return _TAIL.sub(REDACTED, _WHOLE_OR_HEAD.sub(REDACTED, text))


_factory = logging.getLogRecordFactory()


def _record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string is the handler's to report
        return record
    if MARK in message:
        record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if MARK in text:
            record.exc_text = redact(text)    # Formatter uses it instead of formatting
    return record


ON = os.environ.get("SPEC_REDACT_KEYS") != "0"
if ON:
    logging.setLogRecordFactory(_record)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    if not ON:
        return
    if report.longrepr is not None:
        text = str(report.longrepr)
        if MARK in text:
            report.longrepr = redact(text)
    report.sections = [(title, redact(content)) for title, content in report.sections]
