"""The fake TrueNAS's key supply and its once-per-text key validation (fakes/truenas/keys.py).

What a user of the fake relies on:
- no key is handed out twice in a process (so no two nodes, credentials or host keys
  of a world share one), whatever the on-disk cache holds, and every key has the
  asked size and exponent;
- the cache is a 0700 directory of 0600 files; a corrupted, misnamed, loosely
  permitted, linked or other user's file is ignored, and a loose directory is
  neither read nor written;
- validating a key text once changes nothing a client sees: a refused key is refused,
  with the same error, every time, and is never remembered as good.
Keys here are 1024-bit (the smallest cryptography makes) to keep the tests quick.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import asyncssh
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.truenas import keys, ssh
from fakes.truenas.models import cert_crypto, keychain

BITS = 1024
PKCS8 = serialization.PrivateFormat.PKCS8


def _pem(key: rsa.RSAPrivateKey, fmt=PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def _put(folder: Path, data: bytes, name: str | None = None, mode: int = 0o600) -> Path:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / (name or f"{hashlib.sha256(data).hexdigest()}.pem")
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def made() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=BITS) for _ in range(4)]


def _moduli(found: list[rsa.RSAPrivateKey]) -> list[int]:
    return [k.public_key().public_numbers().n for k in found]


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(draws=st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=7),
       copies=st.integers(min_value=0, max_value=3))
def test_no_key_is_handed_out_twice_by_one_supply(tmp_path_factory, made, draws, copies):
    """Two supplies (two processes) over one cache: each hands out distinct keys of the
    asked size, even when the cache holds one key several times (other encodings)."""
    cache = tmp_path_factory.mktemp("keys")
    folder = cache / f"rsa-{BITS}"
    for key in made[:copies]:
        _put(folder, _pem(key))
        _put(folder, _pem(key, serialization.PrivateFormat.TraditionalOpenSSL))
    supplies = {"a": keys.KeySupply(cache), "b": keys.KeySupply(cache)}
    handed: dict[str, list[rsa.RSAPrivateKey]] = {"a": [], "b": []}
    for who in draws:
        handed[who].append(supplies[who].rsa_key(BITS))
    for found in handed.values():
        assert len(set(_moduli(found))) == len(found)
        assert all(k.key_size == BITS and k.public_key().public_numbers().e == 65537
                   for k in found)


def test_a_fresh_key_is_kept_in_a_0700_directory_as_a_0600_file_a_later_process_reuses(
        tmp_path):
    cache = tmp_path / "fake-keys"
    first = keys.KeySupply(cache).rsa_key(BITS)
    folder = cache / f"rsa-{BITS}"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (kept,) = folder.iterdir()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert kept.name == f"{hashlib.sha256(kept.read_bytes()).hexdigest()}.pem"
    later = keys.KeySupply(cache).rsa_key(BITS)
    assert _moduli([later]) == _moduli([first])


def test_the_cache_keeps_no_more_keys_than_its_room(tmp_path):
    supply = keys.KeySupply(tmp_path, cache_keys=2)
    found = [supply.rsa_key(BITS) for _ in range(3)]
    assert len(set(_moduli(found))) == 3
    assert len(list((tmp_path / f"rsa-{BITS}").glob("*.pem"))) == 2


def _inconsistent(key: rsa.RSAPrivateKey) -> bytes:
    """`key` with a private exponent that does not invert e: parses, signs wrongly."""
    n = key.private_numbers()
    bad = rsa.RSAPrivateNumbers(n.p, n.q, n.d + 2, n.dmp1, n.dmq1, n.iqmp, n.public_numbers)
    return _pem(bad.private_key(unsafe_skip_rsa_key_validation=True))


def test_corrupted_and_foreign_cache_files_are_ignored(tmp_path, made, monkeypatch):
    folder = tmp_path / f"rsa-{BITS}"
    good = _pem(made[0])
    flipped = bytearray(good)
    flipped[200] ^= 0x01
    _put(folder, bytes(flipped))                                   # corrupted, renamed
    _put(folder, good, name="0" * 64 + ".pem")                     # misnamed
    _put(folder, _pem(made[1]), mode=0o644)                        # readable by others
    _put(folder, _inconsistent(made[2]))                           # numbers disagree
    _put(folder, _pem(rsa.generate_private_key(65537, 2048)))       # another size
    _put(folder, b"not a key at all\n")
    target = _put(tmp_path / "elsewhere", _pem(made[3]))
    (folder / target.name).symlink_to(target)                      # a link out
    supply = keys.KeySupply(tmp_path, cache_keys=0)
    handed = supply.rsa_key(BITS)
    assert _moduli([handed])[0] not in _moduli(made)                # made fresh instead
    assert keys.consistent(handed, BITS)

    other_user = keys.KeySupply(tmp_path, cache_keys=0)
    _put(folder, _pem(made[3]))                                    # good, but not ours:
    monkeypatch.setattr(keys.os, "geteuid", lambda: os.getuid() + 1)
    assert _moduli([other_user.rsa_key(BITS)])[0] != _moduli([made[3]])[0]


def test_a_cache_directory_open_to_others_is_neither_read_nor_written(tmp_path, made):
    folder = tmp_path / f"rsa-{BITS}"
    _put(folder, _pem(made[0]))
    folder.chmod(0o755)
    handed = keys.KeySupply(tmp_path).rsa_key(BITS)
    assert _moduli([handed]) != _moduli([made[0]])
    assert len(list(folder.iterdir())) == 1


def test_a_valid_key_is_validated_once_and_loads_the_same_after(made):
    text = _pem(made[0], serialization.PrivateFormat.OpenSSH).decode()
    assert not keys.known(text)
    first = keychain.public_of(text)
    assert keys.known(text)
    assert keychain.public_of(text) == first
    assert ssh.import_key(text).export_public_key().decode().split()[:2] == first.split()[:2]
    pem = _pem(made[0]).decode()
    assert cert_crypto.key_info(pem) == (BITS, "RSA")
    assert keys.known(pem)
    assert cert_crypto.private_key_problem(pem) is None


def _refusal(load, text: str) -> str:
    try:
        load(text)
    except (ValueError, asyncssh.KeyImportError) as exc:
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError("a broken key was accepted")


def test_a_refused_key_is_refused_the_same_way_every_time(made):
    """A key whose private exponent does not invert e (it parses; OpenSSL's check
    refuses it): every loader refuses it each time alike, and it is never known."""
    bad = _inconsistent(made[1])
    loaded = serialization.load_pem_private_key(bad, None, unsafe_skip_rsa_key_validation=True)
    for text in (bad.decode(), _pem(loaded, serialization.PrivateFormat.OpenSSH).decode()):
        for load in (keychain.public_of, ssh.import_key):
            refusals = {_refusal(load, text) for _ in range(3)}
            assert len(refusals) == 1
        assert _refusal(keychain.public_of, text) == "ValueError: Load key: invalid format"
        assert not keys.known(text)
    pem = bad.decode()
    problems = {cert_crypto.private_key_problem(pem) for _ in range(3)}
    assert problems == {"A valid private key is required, with a passphrase if one has "
                        "been set."}
    assert cert_crypto.key_info(pem) == (None, None)
    assert not keys.known(pem)


def test_a_key_made_from_the_supply_is_known_good_without_a_check():
    key = keys.rsa_key(2048)
    text = keys.private_text(key, serialization.PrivateFormat.OpenSSH)
    assert keys.known(text)
    assert keychain.public_of(text).startswith("ssh-rsa ")
