"""The dashboard's logins are rows of the store, on both engines: a login token works once
whichever server (replica) it reaches, a session outlives the server that opened it and is
seen by every server over the same database, logout ends it everywhere, and only hashes of
tokens and cookies are stored."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import httpx
import pytest
from conftest import ENGINES

from metrana.server._serve import dashboard_principal
from metrana.server._sessions import Sessions, csrf_token
from metrana.storage import Store, open_store
from metrana.testing import serve_in_thread


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stores(store_location: str) -> Iterator[tuple[Store, Store]]:
    """Two stores over one database, as two replicas (or a server before and after a
    restart) have."""
    first, second = open_store(store_location), open_store(store_location)
    yield first, second
    first.close()
    second.close()


def test_a_token_minted_by_one_server_works_once_on_another(store_location: str) -> None:
    with serve_in_thread(store_location) as one, serve_in_thread(store_location) as two:
        token_url = one.login_url.replace(one.url, two.url)
        with httpx.Client(base_url=two.url) as browser:
            assert browser.get(token_url).status_code == 303  # on the other replica
            cookie = browser.cookies["metrana_session"]
            assert browser.get("/api/v1/experiments").status_code == 200
        assert httpx.get(one.login_url).status_code == 401  # used up, on either
        assert httpx.get(token_url).status_code == 401
        # the session opened on two is one's too; logging out on one ends it on two
        with httpx.Client(base_url=one.url, cookies={"metrana_session": cookie}) as same:
            assert same.get("/api/v1/experiments").status_code == 200
            csrf = {"X-Metrana-CSRF": csrf_token(cookie)}
            assert same.post("/logout", headers=csrf).status_code == 200
        with httpx.Client(base_url=two.url, cookies={"metrana_session": cookie}) as gone:
            assert gone.get("/api/v1/experiments").status_code == 401


def test_a_session_outlives_the_server_that_opened_it(store_location: str) -> None:
    with serve_in_thread(store_location) as before, httpx.Client(base_url=before.url) as browser:
        assert browser.get(before.login_url).status_code == 303
        cookie = browser.cookies["metrana_session"]
        csrf = browser.cookies["metrana_csrf"]
    with serve_in_thread(store_location) as after:  # the restarted server
        jar = {"metrana_session": cookie, "metrana_csrf": csrf}
        with httpx.Client(base_url=after.url, cookies=jar) as browser:
            status = browser.get("/api/v1/auth/status").json()["data"]
            assert status["auth"]["kind"] == "session"
            assert (status["organization"]["name"], status["key_name"]) == (
                "default",
                "metrana serve",
            )
            made = browser.post(
                "/api/v1/folders", json={"name": "kept"}, headers={"X-Metrana-CSRF": csrf}
            )
            assert made.status_code == 200, made.text


def test_a_token_is_used_once_when_replicas_race_for_it(stores: tuple[Store, Store]) -> None:
    one, two = (Sessions(store) for store in stores)
    token, _ = one.mint(dashboard_principal(stores[0]))
    won: list[object] = []
    barrier = threading.Barrier(8)

    def redeem(sessions: Sessions) -> None:
        barrier.wait()
        found = sessions.redeem(token)
        if found is not None:
            won.append(found)

    threads = [threading.Thread(target=redeem, args=(s,)) for s in (one, two) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1


def test_tokens_and_sessions_expire_and_only_their_hashes_are_kept(
    stores: tuple[Store, Store],
) -> None:
    now = [10**18]
    sessions = Sessions(stores[0], clock=lambda: now[0])
    principal = dashboard_principal(stores[0])
    late, expires_ms = sessions.mint(principal, ttl_ms=1000)
    assert expires_ms == now[0] // 1_000_000 + 1000
    token, _ = sessions.mint(principal, ttl_ms=1000)
    found = sessions.redeem(token)
    assert found is not None
    cookie, session = found
    assert session.principal.kind == "session" and session.csrf == csrf_token(cookie)
    with stores[1].reading() as conn:
        rows = [str(r[0]) for r in conn.execute("SELECT hash FROM login_tokens").fetchall()]
        rows += [str(r[0]) for r in conn.execute("SELECT hash FROM dashboard_sessions")]
    digest = {hashlib.sha256(s.encode()).hexdigest() for s in (late, cookie)}
    assert set(rows) == digest  # the used token is gone; no secret is stored
    assert Sessions(stores[1], clock=lambda: now[0]).lookup(cookie) is not None
    now[0] += 1001 * 1_000_000
    assert sessions.redeem(late) is None  # expired
    now[0] += 7 * 24 * 3600 * 10**9
    assert sessions.lookup(cookie) is None  # expired
    assert sessions.redeem("mtl_unknown") is None and sessions.lookup("") is None


def test_revoking_an_api_key_ends_the_logins_it_opened(store_location: str) -> None:
    from metrana import Client

    with serve_in_thread(store_location) as server, Client(server.api_key, host=server.url) as c:
        unused = c.create_login_token(ttl_ms=60_000).login.url
        used = c.create_login_token(ttl_ms=60_000).login.url
        with httpx.Client(base_url=server.url) as browser:
            assert browser.get(used).status_code == 303
            assert browser.get("/api/v1/experiments").status_code == 200
            store = open_store(store_location)
            try:
                (key,) = [k for k in store.list_api_keys() if k.name == "test"]
                store.revoke_api_key(str(key.id))
            finally:
                store.close()
            assert browser.get("/api/v1/experiments").status_code == 401
        assert httpx.get(unused).status_code == 401
