"""SSH between fake nodes: each node's sshd on port 22, and zettarepl's client side.

The server (`service`) is a real SSH server (asyncssh) on the node's own address,
behind the droplet's cloud firewall like every other listener (server.py
`_FirewalledSocket`): a source address the firewall does not let in on 22 is
refused before the SSH handshake. It listens only while the node's SSH service is
enabled (models/keychain.py `enable_ssh`; a fresh 25.10 install has it off).
Only public-key logins, with the keys in the user's `sshpubkey` (its
authorized_keys), as keychaincredential's semi-automatic setup installs them.
Each exec channel runs one command line of models/zfs_cli.py, stdin in, exit
status, stdout and stderr out, on the node's model (under the world's lock, on a
worker thread: the loop never takes the lock).

While a channel's stdin streams in, every chunk is checked against the firewall
as it is then: removing the rule mid-transfer cuts the connection. Whether a
DigitalOcean firewall drops established flows when a rule goes away is not
documented; the fake drops them (the scenario "firewall rule removed
mid-transfer" needs the cut to happen, and a stateless check is the harsher one).

The client (`SshShell`) is what zettarepl's SSH transport does on the sending node
(zettarepl/transport/ssh.py @ bbf2526): one SSH connection from the node's own
address, the credential's private key, the remote host key pinned (a mismatch
fails like OpenSSH's "Host key verification failed"), commands run one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncssh

from fakes.truenas import keys
from fakes.truenas.models import keychain, zfs_cli

if TYPE_CHECKING:
    from fakes.truenas.node import TrueNASNode

READ_CHUNK = 64 * 1024
SEND_CHUNK = 64 * 1024
SSH_PORT = keychain.SSH_PORT


class SocketService:
    """A listener that a library serves from the bound socket itself (server.py)."""

    def __init__(self, start: Callable[[Any], Any], abort_all: Callable[[], None]) -> None:
        self.start = start              # async start(sock) -> server with close()
        self.abort_all = abort_all


def service(node: TrueNASNode, policy: Callable[[], Any]) -> SocketService:
    """The node's sshd, for NodeServer.publish(22, ...)."""
    connections: set[asyncssh.SSHServerConnection] = set()
    # read here, on the caller's thread (which holds the world's lock), not on the loop
    host_keys = [import_key(text) for text in keychain.host_keys(node).values()]

    def allowed(peer: str) -> bool:
        current = policy()
        return current is None or peer == node.address or current.allows(peer, SSH_PORT)

    class Server(asyncssh.SSHServer):
        def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
            self.conn = conn
            connections.add(conn)

        def connection_lost(self, exc: Exception | None) -> None:
            connections.discard(self.conn)

        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return False

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            offered = keychain.normalize_public(key.export_public_key().decode())
            return any(keychain.normalize_public(line) == offered
                       for line in keychain.authorized_keys(node, username))

    async def handle(process: asyncssh.SSHServerProcess) -> None:
        conn = process.channel.get_connection()
        peer = conn.get_extra_info("peername")[0]
        username = conn.get_extra_info("username")
        command = process.command or ""
        chunks = []
        cut = False
        try:
            while True:
                chunk = await process.stdin.read(READ_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                if not allowed(peer):
                    cut = True
                    conn.abort()
                    break
        except (asyncssh.Error, ConnectionError, asyncio.IncompleteReadError, OSError):
            cut = True
        except asyncssh.BreakReceived:
            cut = True
        loop = asyncio.get_running_loop()
        status, out, err = await loop.run_in_executor(
            None, functools.partial(_run_locked, node, username, command, b"".join(chunks)))
        if cut:
            return
        with contextlib.suppress(Exception):
            process.stdout.write(out)
            process.stderr.write(err)
            process.exit(status)

    async def start(sock: Any) -> Any:
        return await asyncssh.listen(sock=sock, server_factory=Server,
                                     server_host_keys=host_keys,
                                     process_factory=handle, encoding=None,
                                     login_timeout=30, allow_scp=False)

    def abort_all() -> None:
        for conn in list(connections):
            with contextlib.suppress(Exception):
                conn.abort()

    return SocketService(start, abort_all)


def _run_locked(node: TrueNASNode, username: str, command: str, stdin: bytes):
    with node.lock:
        if node.state == "SHUTTING_DOWN":
            return 255, b"", b"Connection closed by remote host\n"
        return zfs_cli.run(node, username, command, stdin)


def import_key(text: str) -> asyncssh.SSHKey:
    """asyncssh's import of a private key, with OpenSSL's RSA check once per text
    (keys.py: a refused text is never known, so it is refused every time)."""
    return keys.load_checked_once(text, lambda skip: asyncssh.import_private_key(
        text, unsafe_skip_rsa_key_validation=skip))


class SshError(ConnectionError):
    """The connection could not be made or was lost (ssh's exit status 255)."""


class SshShell:
    """zettarepl's remote shell over SSH, from `node`'s own address (a context manager;
    runs its own event loop on the calling thread)."""

    def __init__(self, node: TrueNASNode, host: str, port: int, username: str,
                 private_key: str, remote_host_key: str, connect_timeout: int = 10,
                 sudo: bool = False) -> None:
        self.node = node
        self.host, self.port, self.username = host, port, username
        # zettarepl/transport/base_ssh.py @ bbf2526: a user other than root with the
        # task's `sudo` runs the remote `zfs` commands through sudo
        self.sudo = sudo and username != "root"
        self._key = import_key(private_key)
        self._known = [asyncssh.import_public_key(line)
                       for line in remote_host_key.splitlines() if line.strip()]
        self.timeout = connect_timeout
        self.loop = asyncio.new_event_loop()
        self.conn: asyncssh.SSHClientConnection | None = None

    def __enter__(self) -> SshShell:
        try:
            self.conn = self.loop.run_until_complete(self._connect())
        except BaseException:
            self.loop.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.conn is not None:
            self.conn.abort()
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(asyncio.wait_for(self.conn.wait_closed(), 2))
        self.loop.close()

    async def _connect(self) -> asyncssh.SSHClientConnection:
        dial = getattr(self.node, "dial", None)
        host, port = dial(self.host, self.port) if dial else (self.host, self.port)
        try:
            return await asyncio.wait_for(asyncssh.connect(
                host, port, local_addr=(self.node.address, 0), username=self.username,
                client_keys=[self._key], known_hosts=(self._known, [], []),
                agent_path=None, config=None, preferred_auth="publickey",
                password=None, kbdint_auth=False), self.timeout)
        except asyncssh.HostKeyNotVerifiable:
            raise SshError("Host key verification failed.") from None
        except asyncssh.PermissionDenied:
            raise SshError(f"{self.username}@{self.host}: Permission denied (publickey).") \
                from None
        except TimeoutError:
            raise SshError(f"ssh: connect to host {self.host} port {self.port}: Connection "
                           "timed out") from None
        except (OSError, asyncssh.Error) as exc:
            raise SshError(f"ssh: connect to host {self.host} port {self.port}: "
                           f"{_reason(exc)}") from None

    def exec(self, command: str, stdin: bytes = b"",
             on_sent: Callable[[int], None] | None = None) -> tuple[int, bytes, bytes]:
        if self.sudo and command.startswith("zfs"):
            command = "sudo " + command
        return self.loop.run_until_complete(self._exec(command, stdin, on_sent))

    async def _exec(self, command: str, stdin: bytes,
                    on_sent: Callable[[int], None] | None) -> tuple[int, bytes, bytes]:
        assert self.conn is not None
        try:
            process = await self.conn.create_process(command, encoding=None)
            sent = 0
            for offset in range(0, len(stdin), SEND_CHUNK):
                if self.node.state != "READY":           # this droplet lost power
                    self.conn.abort()
                    raise SshError("client_loop: send disconnect: Broken pipe")
                if self.conn.is_closed() or process.channel.is_closing():
                    raise SshError("client_loop: send disconnect: Connection reset by peer")
                chunk = stdin[offset:offset + SEND_CHUNK]
                process.stdin.write(chunk)
                await process.stdin.drain()
                sent += len(chunk)
                if on_sent is not None:
                    on_sent(sent)
            process.stdin.write_eof()
            result = await process.wait()
        except SshError:
            raise
        except (OSError, asyncssh.Error, asyncssh.BreakReceived) as exc:
            raise SshError(f"client_loop: send disconnect: {_reason(exc)}") from None
        if result.exit_status is None:
            raise SshError("client_loop: send disconnect: Connection reset by peer")
        return result.exit_status, bytes(result.stdout or b""), bytes(result.stderr or b"")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "Connection refused"
    if isinstance(exc, ConnectionResetError | asyncssh.ConnectionLost):
        return "Connection reset by peer"
    return str(exc) or type(exc).__name__


def host_key_scan(node: TrueNASNode, host: str, port: int, timeout: int) -> str:
    """`ssh-keyscan -p PORT -T TIMEOUT HOST` from `node`: one "<type> <base64>" line
    per host key type the server offers (ssh-keyscan asks for each type in turn)."""
    dial = getattr(node, "dial", None)
    target, target_port = dial(host, port) if dial else (host, port)

    async def scan() -> str:
        lines = []
        for algorithm in ("ssh-rsa", "ecdsa-sha2-nistp256", "ssh-ed25519"):
            try:
                key = await asyncio.wait_for(asyncssh.get_server_host_key(
                    target, target_port, local_addr=(node.address, 0),
                    server_host_key_algs=[algorithm], config=None), timeout)
            except TimeoutError:
                raise SshError("SSH timeout") from None
            except asyncssh.KeyExchangeFailed:
                continue
            except (OSError, asyncssh.Error) as exc:
                raise SshError(_reason(exc)) from None
            if key is not None:
                lines.append(key.export_public_key().decode().strip())
        return "\n".join(lines)

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(scan())
    finally:
        loop.close()
