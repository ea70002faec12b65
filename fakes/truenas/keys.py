"""The fake TrueNAS's RSA keys: drawn from a supply, and validated once per text.

Making and checking RSA keys was a fifth of the spec suite's CPU. Two things make
them cheap without changing what a client of one world can observe:

Supply (`rsa_key`). A node makes its keys once, at first boot (its truenas_default
certificate, sshd's host keys) or on request (`ssh-keygen` for a key pair). The fake
hands out RSA keys of exactly the asked size (e 65537, as OpenSSL and ssh-keygen
make them) from a process-wide supply, each key at most once per process, so no two
nodes, credentials or host keys of a world (which lives in one process) ever share
a key, and a replaced node presents a new certificate. The supply is refilled from a
small on-disk cache that later processes (xdist workers, child runs, `python -m
fakes`) reuse: a world cannot tell a key made a minute before its node booted from
one made an hour before. When the supply runs out a fresh key is made (and kept for
later processes while the cache has room). Not modelled: independence between worlds;
two worlds of different processes may present the same key (nothing compares keys
across worlds), and first boot costs no key-generation time.

The cache is a 0700 directory of 0600 files, one key each (PKCS#8 PEM), named by the
SHA-256 of their bytes. A file is used only if it is a regular file of this user, 0600,
whose name is the hash of its content, holding an RSA key of the asked size and
exponent whose numbers agree (n = pq, d inverts e, the CRT values match); anything
else is ignored. Primality of p and q is not re-tested (OpenSSL's full check costs
what making the key costs): a file passing the rest was written by this user.

Validated once (`load_checked_once`, over `known` and `vouch`). A key's text is
validated in full the first time it is loaded (OpenSSL's RSA check: what refuses
broken keys); the SHA-256 of every text that passed, or that was made from a key known
good, is remembered (a bounded set: digests, not keys) and later loads of that exact
text skip the repeat check. A text that failed is never remembered, so it fails, with
the same error, every time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import secrets
import stat
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

log = logging.getLogger(__name__)
T = TypeVar("T")

PUBLIC_EXPONENT = 65537
CACHE_KEYS = 256            # per key size: one `pytest features/` process uses fewer
MAX_FILE_BYTES = 16 * 1024
KNOWN_TEXTS = 4096


# --- texts validated once ------------------------------------------------------------
_known: OrderedDict[bytes, None] = OrderedDict()
_known_lock = threading.Lock()


def _digest(text: str | bytes) -> bytes:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).digest()


def known(text: str | bytes) -> bool:
    """Whether this exact key text has passed a full validation in this process."""
    digest = _digest(text)
    with _known_lock:
        if digest in _known:
            _known.move_to_end(digest)
            return True
    return False


def vouch(text: str | bytes) -> None:
    """Remember that `text` is a valid key: it passed a full validation, or was
    serialized from a key that did (or that this module made)."""
    digest = _digest(text)
    with _known_lock:
        _known[digest] = None
        _known.move_to_end(digest)
        while len(_known) > KNOWN_TEXTS:
            _known.popitem(last=False)


def load_checked_once(text: str | bytes, load: Callable[[bool], T]) -> T:
    """`load(skip_check)`, skipping OpenSSL's RSA check when this exact text passed it
    before; the text is remembered only once `load` succeeded (a refused text raises
    again, with the same error, every time)."""
    key = load(known(text))
    vouch(text)
    return key


# --- the supply ------------------------------------------------------------------------
def default_cache_dir() -> Path | None:
    """$XDG_CACHE_HOME (or ~/.cache)/truenas-site-spec/fake-keys, or None without a home."""
    base = os.environ.get("XDG_CACHE_HOME")
    try:
        root = Path(base) if base else Path.home() / ".cache"
    except RuntimeError:
        return None
    return root / "truenas-site-spec" / "fake-keys"


class KeySupply:
    """RSA keys handed out at most once each, from `directory` (None: no disk cache)."""

    def __init__(self, directory: Path | None, cache_keys: int = CACHE_KEYS) -> None:
        self.directory = directory
        self.cache_keys = cache_keys
        self._lock = threading.Lock()
        self._pending: dict[int, list[Path]] = {}
        self._handed: set[int] = set()          # moduli handed out by this supply

    def rsa_key(self, bits: int) -> rsa.RSAPrivateKey:
        """An RSA key of `bits` bits that this supply never handed out before."""
        while True:
            with self._lock:
                pending = self._pending.get(bits)
                if pending is None:
                    pending = self._pending[bits] = self._listing(bits)
                path = pending.pop() if pending else None
            if path is None:
                break
            key = self._read(path, bits)
            if key is not None and self._claim(key):
                return key
        key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=bits)
        self._claim(key)
        self._keep(key, bits)
        return key

    def _claim(self, key: rsa.RSAPrivateKey) -> bool:
        modulus = key.public_key().public_numbers().n
        with self._lock:
            if modulus in self._handed:
                return False
            self._handed.add(modulus)
            return True

    # --- the directory ------------------------------------------------------------
    def _folder(self, bits: int, create: bool) -> Path | None:
        """The cache folder for `bits`, if it exists (or was made) and is trusted."""
        if self.directory is None:
            return None
        folder = self.directory / f"rsa-{bits}"
        try:
            if create:
                self.directory.parent.mkdir(parents=True, exist_ok=True)
                for made in (self.directory, folder):
                    made.mkdir(mode=0o700, exist_ok=True)
            info = folder.lstat()
        except OSError:
            return None
        if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid()
                or info.st_mode & 0o077):
            log.warning("fake key cache %s is not a 0700 directory of this user: unused",
                        folder)
            return None
        return folder

    def _listing(self, bits: int) -> list[Path]:
        folder = self._folder(bits, create=False)
        if folder is None:
            return []
        try:
            names = [p for p in folder.iterdir() if p.suffix == ".pem"]
        except OSError:
            return []
        secrets.SystemRandom().shuffle(names)    # concurrent worlds start apart
        return names

    def _read(self, path: Path, bits: int) -> rsa.RSAPrivateKey | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
                    or stat.S_IMODE(info.st_mode) != 0o600 or info.st_size > MAX_FILE_BYTES):
                return None
            data = handle.read(MAX_FILE_BYTES + 1)
        if path.stem != hashlib.sha256(data).hexdigest():
            return None
        try:
            # checked below without the primality tests (module docstring)
            key = serialization.load_pem_private_key(data, password=None,
                                                     unsafe_skip_rsa_key_validation=True)
        except (ValueError, TypeError):
            return None
        if not isinstance(key, rsa.RSAPrivateKey) or not consistent(key, bits):
            return None
        return key

    def _keep(self, key: rsa.RSAPrivateKey, bits: int) -> None:
        folder = self._folder(bits, create=True)
        if folder is None:
            return
        with contextlib.suppress(OSError):
            if sum(1 for p in folder.iterdir() if p.suffix == ".pem") >= self.cache_keys:
                return
            data = key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
            fd, partial = tempfile.mkstemp(dir=folder, suffix=".partial")   # 0600
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(partial, folder / f"{hashlib.sha256(data).hexdigest()}.pem")
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(partial)
                raise


def consistent(key: rsa.RSAPrivateKey, bits: int) -> bool:
    """The key's numbers agree with each other, its size and exponent (all but the
    primality of p and q, which OpenSSL's check adds)."""
    numbers = key.private_numbers()
    public = numbers.public_numbers
    p, q, d, n = numbers.p, numbers.q, numbers.d, public.n
    if public.e != PUBLIC_EXPONENT or n.bit_length() != bits or p * q != n or p == q:
        return False
    lam = math.lcm(p - 1, q - 1)
    return (public.e * d % lam == 1 and numbers.dmp1 == d % (p - 1)
            and numbers.dmq1 == d % (q - 1) and numbers.iqmp * q % p == 1)


_supply = KeySupply(default_cache_dir())


def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    """An RSA key of `bits` bits (e 65537) that no other caller in this process got."""
    return _supply.rsa_key(bits)


def private_text(key: rsa.RSAPrivateKey | object,
                 fmt: serialization.PrivateFormat) -> str:
    """`key` unencrypted as PEM in `fmt`, the text vouched for (the key is known good)."""
    text = key.private_bytes(serialization.Encoding.PEM, fmt,  # type: ignore[attr-defined]
                             serialization.NoEncryption()).decode()
    vouch(text)
    return text
