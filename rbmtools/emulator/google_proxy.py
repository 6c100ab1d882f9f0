"""A loopback HTTPS proxy that takes clients which hard-code Google's URLs to the emulator.

Google's Node helper builds ``https://rcsbusinessmessaging.googleapis.com/...`` itself and its
token library (gtoken) always posts to ``https://www.googleapis.com/oauth2/v4/token``: no
setting points them elsewhere, but both honour ``HTTPS_PROXY``. This proxy answers ``CONNECT``
for Google's RBM and token hosts only (anything else: 403, it is no open proxy), terminates
TLS with a certificate for those hosts signed by a CA it creates at start, and hands the
decrypted HTTP to the emulator. A client then needs configuration only:
``HTTPS_PROXY=http://127.0.0.1:PORT`` and the CA file (``NODE_EXTRA_CA_CERTS`` for Node,
``curl --cacert``, ``REQUESTS_CA_BUNDLE`` for requests). It binds 127.0.0.1 by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rbmtools.wire import GLOBAL_BASE_URL, REGIONS, base_url_for

__all__ = ["GOOGLE_HOSTS", "GoogleProxy"]

log = logging.getLogger("rbmtools.emulator")

#: The hosts the proxy sends to the emulator: the RBM API (global and regional) and Google's
#: token endpoints.
GOOGLE_HOSTS = (
    GLOBAL_BASE_URL.removeprefix("https://"),
    *(base_url_for(region).removeprefix("https://") for region in REGIONS),
    "www.googleapis.com",
    "oauth2.googleapis.com",
)
_HEADER_LIMIT = 8192
_CHUNK = 64 * 1024


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A fresh CA, and a certificate for ``GOOGLE_HOSTS`` it signed: (ca, cert, key) files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rbmtools emulator local CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names = [x509.DNSName(host) for host in GOOGLE_HOSTS]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GOOGLE_HOSTS[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    with os.fdopen(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return ca_file, cert_file, key_file


class GoogleProxy:
    """The proxy (see the module doc), forwarding to the emulator at ``target``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._folder = Path(tempfile.mkdtemp(prefix="rbmtools-google-proxy-"))
        self.ca_file, cert_file, key_file = _certificates(self._folder)
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(cert_file, key_file)
        key_file.unlink()  # the context holds it now
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""
        self.tunnels = 0
        self.refused = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = await asyncio.start_server(self._serve, host, port, limit=_HEADER_LIMIT)
        bound = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for path in self._folder.iterdir():
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._folder.rmdir()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._tunnel(reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that hangs up or speaks no TLS: nothing to report
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method, _, rest = head.partition(" ")
        authority = rest.partition(" ")[0]
        host, _, port = authority.rpartition(":")
        if method != "CONNECT" or host.lower() not in GOOGLE_HOSTS or port != "443":
            self.refused += 1
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await writer.start_tls(self._tls)
        self.tunnels += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(_CHUNK):
            sink.write(chunk)
            await sink.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if sink.can_write_eof():
                sink.write_eof()
