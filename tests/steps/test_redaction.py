"""A private key never reaches a test report or a log (steps/redaction.py): whole, as
JSON or a repr writes it, or cut at either end."""

from __future__ import annotations

import json
import logging

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from steps.redaction import REDACTED, redact


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and "-----" not in line]


def test_a_whole_key_goes_and_the_rest_stays():
    pem = _pem()
    text = redact(f"before\n{pem}after")
    assert text == f"before\n{REDACTED}\nafter"


def test_a_key_inside_json_or_a_repr_goes():
    pem = _pem()
    for text in (json.dumps({"privatekey": pem, "name": "site"}), repr({"k": pem})):
        clean = redact(text)
        assert "PRIVATE KEY" not in clean
        assert not any(line in clean for line in _body_lines(pem))


def test_a_key_cut_at_either_end_goes():
    pem = _pem()
    head, tail = pem[:90], pem[-60:]
    for text in (f"frame {head!r}", f"... {tail!r} [3 kB]", f"{head}...{tail}"):
        clean = redact(text)
        assert "PRIVATE KEY" not in clean, clean
        assert not any(len(line) >= 16 and line in clean for line in _body_lines(pem))


def test_text_without_a_key_is_untouched():
    text = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n a=1 \\n"
    assert redact(text) == text


def test_a_log_record_and_its_traceback_lose_the_key(caplog):
    pem = _pem()
    logger = logging.getLogger("tests.redaction")
    with caplog.at_level(logging.DEBUG, logger="tests.redaction"):
        logger.debug("sent %s", {"privatekey": pem})
        try:
            raise ValueError(f"bad key {pem}")
        except ValueError:
            logger.exception("import failed")
    assert "PRIVATE KEY" not in caplog.text
    assert not any(line in caplog.text for line in _body_lines(pem))
    assert "sent" in caplog.text and "import failed" in caplog.text
