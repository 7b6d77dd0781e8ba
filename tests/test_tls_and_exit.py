"""TLS verification (on by default; ``ca_certs`` trusts a private CA) and the exit drain's
one stderr line. Real sockets: a small HTTPS receiver with a self-signed certificate."""

from __future__ import annotations

import http.server
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentry_log_handler.client import Client
from sentry_log_handler.event import Capture
from sentry_log_handler.options import Options
from sentry_log_handler.send import send_event


class _Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.append(body)
        answer = b'{"id":"x"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS endpoint on 127.0.0.1 with a fresh self-signed certificate: (dsn, cert path)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    _Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://key@127.0.0.1:{server.server_address[1]}/1", cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_tls_is_verified_by_default(https_server: tuple[str, Path]) -> None:
    dsn, _ = https_server
    result = send_event("over TLS", dsn=dsn, timeout=5)
    assert result["success"] is False
    assert "certificate" in result["error"].lower() or "ssl" in result["error"].lower()
    assert _Receiver.received == []


def test_ca_certs_trusts_a_private_ca(https_server: tuple[str, Path]) -> None:
    dsn, cert = https_server
    client = Client(Options(dsn, ca_certs=str(cert), max_retries=0))
    try:
        envelope = client.prepare(Capture("over TLS", logger="tls"))
        assert envelope is not None
        assert client.deliver(envelope) is True
    finally:
        client.close(5)
    assert len(_Receiver.received) == 1


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_exit_drain_says_what_it_could_not_send() -> None:
    dsn = f"http://key:hushhush@127.0.0.1:{_unused_port()}/1"
    script = (
        "import logging, sys\n"
        "from sentry_log_handler import SentryHandler\n"
        f"h = SentryHandler({dsn!r}, shutdown_timeout=0.5, retry_backoff=5)\n"
        "log = logging.getLogger('exit'); log.propagate = False; log.addHandler(h)\n"
        "for i in range(5): log.error('lost %d', i)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0
    lines = [line for line in proc.stderr.splitlines() if "not sent" in line]
    assert len(lines) == 1, proc.stderr
    assert "shutdown_timeout" in lines[0]
    assert "hushhush" not in proc.stderr
    assert "Traceback" not in proc.stderr
