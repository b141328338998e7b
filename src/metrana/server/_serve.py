"""Running the server: the first API key of a new store, the socket, uvicorn."""

from __future__ import annotations

import socket
import sys
import threading
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import msgspec
import uvicorn

from ..api._routes import DEFAULT_MAX_BODY_BYTES
from ..api._types import DEFAULT_INGESTION_KEY_TTL_MS
from ..storage import Principal, Store, open_store
from ._app import create_app
from ._sessions import Sessions, login_url


def ensure_api_key(store: Store, organization: str | None = None) -> str | None:
    """On a store without API keys, create one and answer its secret (shown once).

    The key's organization is ``organization``, else the store's only one, else "default"."""
    if store.list_api_keys():
        return None
    if organization is None:
        names = store.organization_names()
        organization = names[0] if len(names) == 1 else "default"
    _, secret = store.create_api_key(organization, "first key")
    return secret


def dashboard_principal(store: Store, organization: str | None = None) -> Principal:
    """Whom a login URL printed by the server logs in as: ``organization``, else the store's
    only one, else "default"."""
    if organization is None:
        names = store.organization_names()
        organization = names[0] if len(names) == 1 else "default"
    return Principal("api", 0, "metrana serve", store.organization_id(organization), organization)


def open_browser(url: str) -> bool:
    """Open ``url`` in the user's browser, if this machine has one (False if not)."""
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    return browser.open(url)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections of a socket that says
    # it is TCP, and without it every answer on a kept-alive connection waited ~40 ms for the
    # client's delayed ACK (headers and body are two writes).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn(
    store: Store,
    max_body_bytes: int,
    ingestion_key_ttl_ms: int,
    log_level: str,
    graceful: int | None = None,
    sessions: Sessions | None = None,
) -> uvicorn.Server:
    app = create_app(store, max_body_bytes, ingestion_key_ttl_ms, sessions)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=graceful,
    )
    return uvicorn.Server(config)


def serve(
    store_path: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    out: TextIO = sys.stdout,
    ingestion_key_ttl_ms: int = DEFAULT_INGESTION_KEY_TTL_MS,
    browse: bool = False,
) -> None:
    """Serve a store until interrupted; print where, the first key of a new store, and a
    one-time login URL for the dashboard (opened in a browser if ``browse`` and there is one)."""
    store = open_store(store_path)
    secret = ensure_api_key(store)
    sock = bind(host, port)
    url = _url(sock)
    sessions = Sessions(store)
    token, _ = sessions.mint(dashboard_principal(store))
    login = login_url(url, token)
    if secret is not None:
        out.write(f"Created the first API key of this store (shown once, keep it):\n  {secret}\n")
    out.write(f"Metrana server on {url} (store {store.location}); Ctrl-C stops it\n")
    if host not in ("127.0.0.1", "localhost", "::1"):
        out.write(f"warning: listening on {host}, beyond this machine; put TLS in front of it\n")
    if browse and open_browser(login):
        out.write(f"Dashboard opened in your browser ({url}/)\n")
    else:
        out.write(f"Dashboard (a login link that works once):\n  {login}\n")
    out.flush()
    try:
        server = _uvicorn(store, max_body_bytes, ingestion_key_ttl_ms, "warning", None, sessions)
        server.run(sockets=[sock])
    finally:
        store.close()


class RunningServer(msgspec.Struct):
    url: str
    api_key: str
    store_path: str
    login_url: str = ""  # a one-time dashboard login of the key's organization


@contextmanager
def serve_in_thread(
    store_path: str,
    organization: str = "default",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ingestion_key_ttl_ms: int = DEFAULT_INGESTION_KEY_TTL_MS,
) -> Iterator[RunningServer]:
    """A real server on 127.0.0.1 and a free port, in a thread of this process, with a fresh
    API key of ``organization``; stopped on exit."""
    store = open_store(store_path)
    _, secret = store.create_api_key(organization, "test")
    sock = bind("127.0.0.1", 0)
    sessions = Sessions(store)
    token, _ = sessions.mint(dashboard_principal(store, organization))
    server = _uvicorn(store, max_body_bytes, ingestion_key_ttl_ms, "error", 1, sessions)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="metrana-server", daemon=True
    )
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread died while starting")
            threading.Event().wait(0.01)
        url = _url(sock)
        yield RunningServer(url, secret, store_path, login_url(url, token))
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        store.close()
