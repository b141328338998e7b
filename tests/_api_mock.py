"""What the REST client's unit tests share: a scripted server behind ``httpx.MockTransport``,
answers in the API's envelope, and :class:`Blocking`, which lets one test body drive a
:class:`metrana.AsyncClient` as if it were a :class:`metrana.Client`."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from metrana.api import AsyncClient, Client, RetryPolicy

HOST = "http://metrana.test:8765"
KEY = "mtr_api_secret"
FAST = RetryPolicy(max_attempts=3, max_elapsed=30.0, base_delay=0.001, max_delay=0.002)
IDEMPOTENCY_KEY = r"^metrana-[0-9a-f]{32}$"

FOLDER = {
    "folder_id": "3",
    "org_id": "1",
    "name": "mnist",
    "parent_id_path": ["1"],
    "path_name": "vision/mnist",
}
EXPERIMENT = {
    "id": "7",
    "org_id": "1",
    "folder": FOLDER,
    "url": f"{HOST}/experiments/7",
    "slug": "baseline",
    "description": "",
    "metadata": {"lr": 0.1},
    "status": "running",
    "error_name": None,
    "error_detail": None,
    "created_at_ms": 1,
    "updated_at_ms": 2,
    "started_at_ms": 2,
    "done_at_ms": None,
    "last_heartbeat_at_ms": None,
    "last_event_at_ms": None,
}
AUTH = {
    "auth": {"kind": "api_key"},
    "organization": {"id": "1", "name": "me"},
    "key_name": "laptop",
    "experiment_id": None,
}
ROW = {
    "event_id": "e1",
    "org_id": "1",
    "experiment_id": "7",
    "experiment_slug": "baseline",
    "metric_name": "loss",
    "metric_value": 0.5,
    "step": 1,
    "event_metadata_json": '{"split":"train"}',
    "client_timestamp_ms": 10,
    "server_timestamp_ms": 11,
    "scale": "ML_STEP",
    "experiment_description": None,
    "experiment_metadata_json": None,
}
INGESTION_KEY = {
    "id": "5",
    "experiment_id": "7",
    "name": "SDK ingestion key",
    "created_at_ms": 1,
    "expires_at_ms": 4_102_444_800_000,  # 2100: never near expiry in these tests
    "revoked_at_ms": None,
    "last_used_at_ms": None,
    "prefix": "mti_ab",
}
ANNOTATION = {
    "id": "2",
    "experiment_id": "7",
    "annotation": "lr drop",
    "metadata": {"step": 100},
    "created_at_ms": 6,
}
INGESTED = {"ok": True, "mode": "sync", "accepted": 1, "duplicates": 0, "pacing_seconds": 0.0}

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    """A success answer in the API's envelope."""
    return httpx.Response(status, json={"data": data, "error": None}, headers=headers)


def api_error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    """An error answer as the server writes it."""
    return httpx.Response(
        status, json={"error": {"message": message, "details": f"code={code}"}}, headers=headers
    )


def key_created(token: str, expires_at_ms: int = 4_102_444_800_000) -> httpx.Response:
    """The answer of ``create_ingestion_key``."""
    key = {**INGESTION_KEY, "expires_at_ms": expires_at_ms}
    return ok({"key": key, "token": token})


def raw_path(request: httpx.Request) -> str:
    return request.url.raw_path.decode().split("?")[0]


def body(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


def bearer(request: httpx.Request) -> str:
    return request.headers["Authorization"].removeprefix("Bearer ")


class Blocking:
    """An :class:`AsyncClient` with blocking methods: each coroutine method is run to its end
    on one event loop kept for the adapter's life (so pooled connections stay usable);
    attributes and plain methods pass through. ``close()`` awaits ``aclose()``."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        def blocking(*args: Any, **kwargs: Any) -> Any:
            if self._loop.is_closed():  # used after close(): on a loop of its own
                return asyncio.run(attribute(*args, **kwargs))
            return self._loop.run_until_complete(attribute(*args, **kwargs))

        return blocking

    def close(self) -> None:
        self._loop.run_until_complete(self.client.aclose())
        self._loop.close()

    def __enter__(self) -> Blocking:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Server:
    """A scripted server: answers in order (the last one repeats), every request recorded.
    ``flavor`` picks the client it makes: ``"sync"`` (Client) or ``"async"`` (AsyncClient
    behind :class:`Blocking`)."""

    def __init__(self, *answers: Answer, flavor: str = "sync") -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.flavor = flavor

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):  # a fresh copy: answers repeat, and either
            # client may read one (a response's stream is for blocking or asyncio reads)
            return httpx.Response(answer.status_code, headers=answer.headers, content=answer.read())
        return answer(request)

    def client(self, auth: Any = KEY, **kwargs: Any) -> Any:
        """A client of this server (a Client, or a Blocking AsyncClient)."""
        kwargs.setdefault("retry", FAST)
        kwargs.setdefault("host", HOST)
        transport = httpx.MockTransport(self)
        if self.flavor == "async":
            return Blocking(AsyncClient(auth, transport=transport, **kwargs))
        return Client(auth, transport=transport, **kwargs)
