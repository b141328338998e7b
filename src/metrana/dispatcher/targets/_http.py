"""Delivery over HTTP: the run handshake through ``metrana.Client``, then protobuf batches to
``/api/v1/ingest`` with up to ``num_dispatch_workers`` requests in flight."""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

import httpx

from ..._config import Config, retry_policy
from ..._errors import (
    MetranaDispatcherError,
    MetranaError,
    MetranaRunExistsError,
    TargetUnreachableError,
)
from ..._identity import SeriesColumns, labels_json
from ..._logging import logger
from ..._retry import Pacer, RetryInterrupted, RetryPolicy
from ...api import Client, MetricsApiRequestError
from ...api._routes import API_PREFIX, INGEST_PATH, PROTOBUF_CONTENT_TYPE
from ...api._transport import drive, needs_tls, send_with_retries
from ...api._types import (
    KEY_RENEWAL_MARGIN_MS,
    ExperimentStatusError,
    IngestionKeyCreateResponse,
    RunHandshakeRequest,
    TrackingStatus,
)
from ...proto import IngestResponse
from ...proto._codec import decode_batch, encode_batch
from ...storage import RunHandle, WriteResult
from ._base import Batch, DeliveryFailure, RejectedBatch


class HttpTarget:
    """Ships batches to a Metrana server; acknowledged = the server stored and deduplicated."""

    def __init__(
        self,
        config: Config,
        *,
        transport: httpx.BaseTransport | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """``transport`` replaces the HTTP transport (``httpx.MockTransport`` in tests);
        ``stop``, once set, ends every wait between retries at once."""
        assert config.ingestion_url is not None and config.api_key is not None
        self._transport = transport
        self._stop = stop
        self.config = config
        self.url = config.ingestion_url
        self.max_inflight = config.num_dispatch_workers
        self.offline = False
        self.policy = retry_policy()
        self.client = Client(config.api_key, host=self.url, timeout=10.0, transport=transport)
        self.experiment_id = 0
        host = config.host_id or os.uname().nodename
        self.producer_id = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._sequence = 0
        self._sequence_lock = threading.Lock()
        self._pacer = Pacer()
        self._http: httpx.Client | None = None
        self._key_lock = threading.Lock()
        self._key_generation = 0
        self._key_id: str | None = None  # the ingestion key this dispatcher minted
        self._key_renew_at = math.inf  # time.time() from which it is replaced
        self._open_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.max_inflight, thread_name_prefix="metrana-send")

    def adopt(self, experiment_id: int) -> None:
        self.experiment_id = experiment_id  # opened for real before the first delivery

    def _ensure_open(self) -> None:
        with self._open_lock:
            if self._http is not None:
                return
            try:
                self.open_run(self.config)
            except MetranaError as error:  # the data waits (spool) until the run can be opened
                raise DeliveryFailure(str(error)) from None

    def open_run(self, config: Config) -> RunHandle:
        run = config.run
        request = RunHandshakeRequest(
            project_name=run.project_name,
            run_name=run.run_name,
            orchestration_id=config.orchestration_id,
            experiment_name=run.experiment_name,
            resume_strategy="Never" if config.resume_strategy.value == "Never" else "Allow",
            workspace_name=run.workspace_name,
            metadata=config.metadata,
        )
        try:
            answer = self.client.run_handshake(request)
            key = self.client.create_ingestion_key(answer.experiment.id, name="dispatcher")
        except MetricsApiRequestError as error:
            if error.error_code == "run_exists":
                raise MetranaRunExistsError(error.server_message) from error
            if error.status_code in (401, 403):
                raise MetranaDispatcherError(
                    f"the server at {self.url} refused the API key ({error.status_code}): "
                    f"{error.server_message}"
                ) from error
            if error.retryable:
                raise TargetUnreachableError(
                    f"cannot reach the server at {self.url}: {error.server_message}"
                ) from error
            raise MetranaDispatcherError(
                f"the server at {self.url} refused the run handshake ({error.status_code}): "
                f"{error.server_message}"
            ) from error
        self.experiment_id = int(answer.experiment.id)
        self._note_key(key)
        self._http = httpx.Client(
            transport=self._transport,
            base_url=self.url,
            verify=needs_tls(self.url),
            timeout=httpx.Timeout(60.0, connect=10.0),
            headers={
                "Authorization": f"Bearer {key.token}",
                "Content-Type": PROTOBUF_CONTENT_TYPE,
            },
            limits=httpx.Limits(max_connections=self.max_inflight),
        )
        resume = [
            (s.metric_name, s.scale, labels_json(s.labels), s.last_step) for s in answer.resume
        ]
        return RunHandle(experiment_id=self.experiment_id, created=answer.created, resume=resume)

    def submit(self, batch: Batch) -> Future[WriteResult]:
        return self._submit(batch, self.producer_id, self._next_sequence())

    def submit_spooled(self, batch: Batch, producer_id: str, sequence: int) -> Future[WriteResult]:
        return self._submit(batch, producer_id, sequence)

    def _next_sequence(self) -> int:
        with self._sequence_lock:
            self._sequence += 1
            return self._sequence

    def _submit(self, batch: Batch, producer_id: str, sequence: int) -> Future[WriteResult]:
        """Encode in the caller's thread once the run is open, so that only the protobuf body
        (a fifth of the columns' memory) waits in flight; a failure decodes it back."""
        if self._http is None:  # the first sender opens the run
            return self._pool.submit(self._open_and_deliver, [batch], producer_id, sequence)
        return self._pool.submit(
            self._deliver,
            encode_batch(producer_id, sequence, self.experiment_id, batch),
            _points(batch),
        )

    def _open_and_deliver(self, held: list[Batch], producer_id: str, sequence: int) -> WriteResult:
        # The batch is passed in a list emptied once it is encoded: the pool keeps a task's
        # arguments until the task ends, and the columns must not wait for the answer.
        try:
            self._ensure_open()
        except DeliveryFailure as error:
            batch = held[0]
            error.undelivered = lambda: batch
            raise
        batch = held.pop()
        body = encode_batch(producer_id, sequence, self.experiment_id, batch)
        return self._deliver(body, _points(batch))

    def _deliver(self, body: bytes, points: int) -> WriteResult:
        try:
            try:
                return self._send(body, points)
            except _TooLarge:
                return self._split_and_send(decode_batch(body).series)
        except RejectedBatch:
            raise
        except DeliveryFailure as error:
            # the whole batch, even if a half of it was stored: the store keeps each point once
            error.undelivered = lambda: decode_batch(body).series
            raise

    def _split_and_send(self, batch: Batch) -> WriteResult:
        """413: the server's size limit is below this batch; send it in halves, never as is."""
        halves = _split(batch)
        if halves is None:
            raise RejectedBatch("a single point is larger than the server's size limit", 413)
        logger.info("batch too large for the server: splitting it in two")
        total = WriteResult(accepted=0, duplicates=0, duplicates_by_series={})
        for half in halves:
            body = encode_batch(self.producer_id, self._next_sequence(), self.experiment_id, half)
            try:
                result = self._deliver(body, _points(half))
            except RejectedBatch as error:  # the other halves are still sent
                rejected = sum(len(columns.steps) for columns in half.values())
                logger.error("dropping %d points the server rejected: %s", rejected, error)
                total.rejected += rejected
                continue
            total.accepted += result.accepted
            total.rejected += result.rejected
            total.duplicates += result.duplicates
            for name, count in result.duplicates_by_series.items():
                total.duplicates_by_series[name] = total.duplicates_by_series.get(name, 0) + count
        return total

    def _send(self, body: bytes, points: int) -> WriteResult:
        """POST one batch with the one retry loop; the same (producer, sequence) on every try.
        A refused ingestion key is replaced once; a stop (SIGTERM) ends a wait between tries
        at once, and the batch is given back for the spool."""
        reminted = False
        while True:
            generation = self._key_generation
            if time.time() >= self._key_renew_at:
                self._remint_key(generation, "it expires soon", refused=False)
                generation = self._key_generation
            try:
                response = self._post(body)
            except MetricsApiRequestError as error:
                if error.status_code == 413:
                    raise _TooLarge from None
                if error.status_code in (401, 403) and not reminted:
                    reminted = True
                    self._remint_key(generation, error.server_message)
                    continue
                if error.status_code in (400, 422):
                    raise RejectedBatch(
                        f"the server rejected a batch ({error.status_code}): "
                        f"{error.server_message}",
                        error.status_code,
                    ) from None
                # Unreachable, out of retries, or 401/403/404/409: the batch is fine, the
                # network, credentials or run are not; keep the data so a fixed server gets it.
                raise DeliveryFailure(_delivery_problem(error)) from None
            except RetryInterrupted as error:
                raise DeliveryFailure(f"stopping: {error}") from None
            answer = IngestResponse()
            try:
                answer.ParseFromString(response.content)
            except Exception as error:
                raise DeliveryFailure(f"the server answered garbage: {error}") from None
            self._pacer.hint(answer.pacing_seconds)
            if answer.accepted + answer.duplicates != points:
                # Every point of a batch is stored or recognised, or the batch is refused: a
                # server that answers otherwise did not read all of it (say, an older server
                # that ignores bulk runs). Keep the batch rather than commit what it dropped.
                raise DeliveryFailure(
                    f"the server stored {answer.accepted} and recognised {answer.duplicates} of "
                    f"the {points} points of a batch: it does not read all of this Metrana's "
                    "batch (an older server?); upgrade the server to this version"
                )
            return WriteResult(
                accepted=answer.accepted,
                duplicates=answer.duplicates,
                duplicates_by_series=dict(answer.duplicates_by_series),
            )

    def _post(self, body: bytes) -> httpx.Response:
        http = self._http
        assert http is not None

        def build() -> httpx.Request:
            return http.build_request("POST", API_PREFIX + INGEST_PATH, content=body)

        op = send_with_retries(build, self.policy, what="ingest", host=self.url, pacer=self._pacer)
        return drive(http, op, self._stop)

    def _remint_key(self, generation: int, why: str, refused: bool = True) -> None:
        """Replace the ingestion key, refused or about to expire (once, whichever thread
        sees it first)."""
        assert self._http is not None
        with self._key_lock:
            if self._key_generation != generation:
                return  # another sender already replaced it
            if refused:
                logger.warning("the server refused the ingestion key (%s); minting another", why)
            else:
                logger.info("minting a new ingestion key: %s", why)
            try:
                key = self.client.create_ingestion_key(str(self.experiment_id), name="dispatcher")
            except MetricsApiRequestError as error:
                state = "was refused" if refused else "expires soon"
                raise DeliveryFailure(
                    f"the ingestion key {state} and a new one could not be minted "
                    f"({error.status_code}): {error.server_message}; check that the job's "
                    "METRANA_API_KEY is a valid API key of that server"
                ) from None
            self._http.headers["Authorization"] = f"Bearer {key.token}"
            self._note_key(key)
            self._key_generation += 1

    def _note_key(self, key: IngestionKeyCreateResponse) -> None:
        """Keep the new key's id (revoked at exit) and when to renew it: a tenth of its life
        before it expires, at most 5 minutes before."""
        self._key_id = key.key.id
        expires = key.key.expires_at_ms / 1000
        margin = min(KEY_RENEWAL_MARGIN_MS / 1000, (expires - time.time()) / 10)
        self._key_renew_at = expires - margin

    def set_status(self, status: str, error: ExperimentStatusError | None = None) -> None:
        tracked = cast(TrackingStatus, status)  # the target's callers pass running/done/error
        self.client.update_experiment_status(str(self.experiment_id), tracked, error=error)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._http is not None:
            self._http.close()
        self.client.close()
        if self._key_id is not None:
            # Revoked so that keys do not pile up run after run. One try, and at most 3 s: a
            # dispatcher must not hang at exit on a server that is gone (or on name
            # resolution); a key left behind is harmless.
            revoke = threading.Thread(target=self._revoke_key, args=(self._key_id,), daemon=True)
            revoke.start()
            revoke.join(3.0)

    def _revoke_key(self, key_id: str) -> None:
        assert self.config.api_key is not None
        once = RetryPolicy(max_attempts=1)
        try:
            with Client(
                self.config.api_key,
                host=self.url,
                timeout=2.0,
                retry=once,
                transport=self._transport,
            ) as client:
                client.revoke_ingestion_key(str(self.experiment_id), key_id)
        except Exception as error:
            logger.info("could not revoke the ingestion key %s: %s", key_id, error)


class _TooLarge(Exception):
    pass


def _delivery_problem(error: MetricsApiRequestError) -> str:
    if error.status_code is None:
        return error.server_message  # cannot reach the server (and how many tries)
    if error.retryable:
        return f"the server kept failing ({error.status_code}): {error.server_message}"
    return f"the server refused delivery ({error.status_code}): {error.server_message}"


def _points(batch: Batch) -> int:
    return sum(len(columns) for columns in batch.values())


def _split(batch: Batch) -> tuple[Batch, Batch] | None:
    items = list(batch.items())
    if len(items) > 1:
        middle = len(items) // 2
        return dict(items[:middle]), dict(items[middle:])
    ((key, columns),) = items
    n = len(columns.steps)
    if n <= 1:
        return None
    m = n // 2
    first = SeriesColumns(columns.steps[:m], columns.values[:m], columns.timestamps[:m])
    second = SeriesColumns(columns.steps[m:], columns.values[m:], columns.timestamps[m:])
    return {key: first}, {key: second}
