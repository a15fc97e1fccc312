"""The embedded local stack: a store, the template's resources, the pipe and the consumer poller.

The composition root of `orgsync.local`, wiring only: it starts the store (`servers`), creates
the template's resources (`template`), runs the pipe emulation (`pipes`) and Lambda's SQS poller
(`lambda_`), with faults when asked (`chaos`). Waiting is `drain`'s, reporting `status`'s,
clients `clients`'. Reads no environment variables itself.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.local.chaos import Chaos, ChaosProxy, ChaosRestarter, RestartTarget
from orgsync.local.clients import StackClients
from orgsync.local.drain import drain_pipeline
from orgsync.local.emptying import empty_resources
from orgsync.local.errors import EmbeddedStackError
from orgsync.local.lambda_.event_sources import event_source_pollers
from orgsync.local.lambda_.sqs_poller import SqsEventSourcePoller
from orgsync.local.options import StackOptions
from orgsync.local.own_requests import is_own_request, stack_operation
from orgsync.local.servers import EmbeddedStore, serve_in_process, start_store
from orgsync.local.status import (
    PipeStatus,
    PollerStatus,
    QueueDepth,
    QueueMissingError,
    StackStatus,
    missing_tables,
    pipe_status,
    poller_status,
    read_queue_depth,
)
from orgsync.local.template.model import PipeModel, StackModel
from orgsync.local.template.reader import load_stack_model
from orgsync.local.template.resources import CreatedResources, create_resources

if TYPE_CHECKING:
    from orgsync.local.pipes.runner import PipeRunner
    from orgsync.local.pipes.thread import PipeThread

__all__ = [
    "EmbeddedStack",
    "PipeStatus",
    "PollerStatus",
    "QueueDepth",
    "StackOptions",
    "StackStatus",
]

logger = logging.getLogger(__name__)

_UNKNOWN_ACCOUNT = "000000000000"


class EmbeddedStack:
    """Start with `start()` or `with EmbeddedStack(options) as stack:`; `stop()` is idempotent."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self._store: EmbeddedStore | None = None
        self._endpoint_url: str | None = None
        self._model: StackModel | None = None
        self._created: CreatedResources | None = None
        self._clients: StackClients | None = None
        self._pipes: list[PipeThread] = []
        self._runner_factories: list[Callable[[], PipeRunner]] = []
        self._pollers: list[SqsEventSourcePoller] = []
        self._lock = threading.Lock()
        self._store_endpoint_url: str | None = None
        self._chaos: Chaos | None = None
        self._chaos_proxy: ChaosProxy | None = None
        self._restarter: ChaosRestarter | None = None
        self._account = _UNKNOWN_ACCOUNT
        self._stop_serving_in_process: Callable[[], None] = lambda: None
        self._unwatch: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Serve the endpoint, create the resources, start the pipe and the poller."""
        with self._lock:
            if self._endpoint_url is not None:
                raise EmbeddedStackError("the local stack is already running")
            try:
                with stack_operation():
                    self._start()
            except BaseException:
                self._stop()
                raise

    def _start(self) -> None:
        options = self.options
        if options.endpoint_url:
            self._endpoint_url = options.endpoint_url.rstrip("/")
        else:
            self._store = start_store(
                options.store,
                port=options.port,
                state_dir=options.state_dir,
                dynamodb_local_dir=options.dynamodb_local_dir,
            )
            self._endpoint_url = self._store.endpoint_url
            # The pipes' and pollers' requests (the handler's too) skip HTTP; others keep it.
            self._stop_serving_in_process = serve_in_process(
                self._endpoint_url,
                self._store.in_process_application,
                routed_thread=is_own_request,
            )
        self._store_endpoint_url = self._endpoint_url
        if options.chaos is not None:
            # Every client of the stack's endpoint, in any process, goes through the faults.
            self._chaos = Chaos(
                options.chaos, visibility_timeout=options.visibility_timeout_seconds or 0
            )
            self._chaos_proxy = ChaosProxy(self._chaos, upstream_url=self._endpoint_url)
            self._chaos_proxy.start()
            self._endpoint_url = self._chaos_proxy.endpoint_url
        self._clients = StackClients(
            self._endpoint_url,
            region=options.region,
            concurrency=max(options.maximum_concurrency or 10, 10),
            external=bool(options.endpoint_url),
        )
        account_id = self._account_id()
        model = self._load_model(account_id, physical_ids={})
        created = create_resources(model, dynamodb=self.client("dynamodb"), sqs=self.client("sqs"))
        self._shorten_visibility(model, created)
        # Endpoints that spell queue URLs their own way: re-resolve Refs with the real ones.
        differing = {
            queue.logical_id: created.queue_urls[queue.logical_id]
            for queue in model.queues
            if created.queue_urls[queue.logical_id] != queue.url
        }
        if differing:
            model = self._load_model(account_id, physical_ids=differing)
        self._model, self._created = model, created
        self._account = account_id
        if options.run_pipeline:
            self._start_pipes(model, created)
            self._start_pollers(model, created)
            self._start_restarter()
        self._keep_on_reset(model)
        if model.not_emulated:
            # Once per start: what deploys but does not run here (a bucket, a state machine).
            logger.info(
                "not emulated locally: %s", "; ".join(str(item) for item in model.not_emulated)
            )
        logger.info("local stack serving %s", self._endpoint_url)

    def _keep_on_reset(self, model: StackModel) -> None:
        # A `POST /moto-api/reset` sent to the store (a suite that resets moto between tests)
        # must not take the stack's resources with it (moto_patches.reset).
        if self._store is None:
            return
        tables = [table.name for table in model.tables]
        tables += [thread.runner.settings.checkpoint_table for thread in self._pipes]
        self._store.keep_on_reset(
            account_id=self._account,
            region=self.options.region,
            tables=tables,
            queues=[queue.name for queue in model.queues],
        )

    def _load_model(self, account_id: str, *, physical_ids: Mapping[str, str]) -> StackModel:
        return load_stack_model(
            self.options.template_path,
            parameters=self.options.parameters,
            region=self.options.region,
            account_id=account_id,
            endpoint_url=self._endpoint_url,
            physical_ids=physical_ids,
        )

    def _account_id(self) -> str:
        # moto answers 123456789012, LocalStack 000000000000, AWS the real one: queue URLs and
        # ARNs built from the template must carry the same.
        try:
            return str(self.client("sts").get_caller_identity()["Account"])
        except (ClientError, BotoCoreError):
            return _UNKNOWN_ACCOUNT

    def _consumed_queues(self, model: StackModel) -> list[str]:
        return [
            source.queue_name
            for function in model.functions
            for source in function.sqs_event_sources
            if source.enabled
        ]

    def _shorten_visibility(self, model: StackModel, created: CreatedResources) -> None:
        seconds = self.options.visibility_timeout_seconds
        longest = 0
        for name in self._consumed_queues(model):
            queue = model.queue_named(name)
            if seconds is not None:
                self.client("sqs").set_queue_attributes(
                    QueueUrl=created.queue_urls[queue.logical_id],
                    Attributes={"VisibilityTimeout": str(seconds)},
                )
            longest = max(longest, seconds if seconds is not None else queue.visibility_timeout)
        if self._chaos is not None:
            self._chaos.use_visibility_timeout(longest)

    def _start_restarter(self) -> None:
        if self._chaos is None:
            return
        targets = [
            RestartTarget(f"pipe {thread.runner.settings.name}", self._restart_pipe(index))
            for index, thread in enumerate(self._pipes)
        ]
        targets += [
            RestartTarget(f"poller {poller.config.function_name}", _restart_poller(poller))
            for poller in self._pollers
        ]
        self._restarter = ChaosRestarter(self._chaos, targets)
        self._restarter.start()

    def _restart_pipe(self, index: int) -> Callable[[], None]:
        # The factory of the moment: `recreate_missing` replaces it when a stream is new.
        return lambda: self._pipes[index].restart(self._runner_factories[index])

    def _start_pipes(self, model: StackModel, created: CreatedResources) -> None:
        # Only with a pipeline: the pipe's filter imports moto's EventBridge pattern matcher.
        from orgsync.local.pipes.thread import PipeThread  # noqa: PLC0415

        for pipe in model.pipes:
            make_runner = self._runner_factory(model, created, pipe)
            runner = make_runner()
            runner.ensure_checkpoint_table()
            thread = PipeThread(runner)
            thread.start()
            self._pipes.append(thread)
            self._runner_factories.append(make_runner)
        if self.options.wake_pipes_on_writes:
            self._unwatch += self._wake_pipes_on_writes()

    def _wake_pipes_on_writes(self) -> list[Callable[[], None]]:
        if self._store is None:
            return []
        return [
            self._store.watch_writes([pipe.source_table_name], _waker(thread))
            for pipe, thread in zip(self.model.pipes, self._pipes, strict=True)
        ]

    @contextlib.contextmanager
    def pipes_woken_by_writes(self) -> Iterator[None]:
        """Inside, a write to a pipe's table starts its next pass at once (as the fixture's
        stack and `local up --fast` always do); a benchmark compares both paces."""
        unwatch = self._wake_pipes_on_writes()
        try:
            yield
        finally:
            for stop_watching in unwatch:
                stop_watching()

    def store_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds the embedded store spent on requests, by origin (empty: external)."""
        return self._store.cpu_seconds() if self._store is not None else {}

    def _runner_factory(
        self, model: StackModel, created: CreatedResources, pipe: PipeModel
    ) -> Callable[[], PipeRunner]:
        from orgsync.local.pipes.runner import PipeRunner  # noqa: PLC0415

        table = model.table_named(pipe.source_table_name)
        stream_arn = created.stream_arns.get(table.logical_id)
        if stream_arn is None:
            raise EmbeddedStackError(f"pipe {pipe.name}: table {table.name} has no stream")
        target = model.queue_named(pipe.target_queue_name)
        dead_letter_url = None
        if pipe.dead_letter_queue_name is not None:
            dead_letter = model.queue_named(pipe.dead_letter_queue_name)
            dead_letter_url = created.queue_urls[dead_letter.logical_id]
        settings = pipe.settings(
            stream_arn,
            target_queue_url=created.queue_urls[target.logical_id],
            dead_letter_queue_url=dead_letter_url,
        )

        def make_runner() -> PipeRunner:
            return PipeRunner(
                settings,
                streams=self.client("dynamodbstreams"),
                sqs=self.client("sqs"),
                dynamodb=self.client("dynamodb"),
                poll_interval=self.options.pipe_poll_interval,
                extra=self._chaos,
            )

        return make_runner

    def _start_pollers(self, model: StackModel, created: CreatedResources) -> None:
        interrupt = self._store.interrupt_receive if self._store is not None else None
        self._pollers = event_source_pollers(
            model,
            created,
            sqs=self.client("sqs"),
            endpoint_url=self.endpoint_url,
            region=self.options.region,
            handler=self.options.handler,
            emit_metrics=self.options.emit_metrics,
            maximum_concurrency=self.options.maximum_concurrency,
            # Long polls, as Lambda's pollers make: the embedded store serves them by waiting on
            # sends and ends them when a pause or a stop needs the poller (interrupt_receive).
            receive_wait_seconds=20 if interrupt is not None else 1,
            interrupt_receive=interrupt,
            faults=self._chaos,
        )
        for poller in self._pollers:
            poller.start()

    def stop(self) -> None:
        """Stop the poller (running invocations finish), the pipe, then the store."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        restarter, self._restarter = self._restarter, None
        if restarter is not None:
            restarter.stop()
        pollers, self._pollers = self._pollers, []
        for poller in reversed(pollers):  # each restores the environment the previous one saw
            poller.stop()
        unwatch, self._unwatch = self._unwatch, []
        for stop_watching in unwatch:
            stop_watching()
        pipes, self._pipes = self._pipes, []
        for pipe in pipes:
            pipe.stop(timeout=10)
        self._runner_factories = []
        proxy, self._chaos_proxy = self._chaos_proxy, None
        if proxy is not None:
            proxy.stop()
        self._stop_serving_in_process()
        self._stop_serving_in_process = lambda: None
        store, self._store = self._store, None
        if store is not None:
            store.stop()
        self._endpoint_url = None
        self._store_endpoint_url = None
        self._clients = None

    # ------------------------------------------------------------------ access

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise EmbeddedStackError("the local stack is not running")
        return self._endpoint_url

    @property
    def store_endpoint_url(self) -> str:
        """The store itself, without the chaos proxy (the same as endpoint_url without chaos)."""
        if self._store_endpoint_url is None:
            raise EmbeddedStackError("the local stack is not running")
        return self._store_endpoint_url

    @property
    def chaos(self) -> Chaos | None:
        """The running fault injectors (reconfigure, counts), when started with a chaos spec."""
        return self._chaos

    @property
    def model(self) -> StackModel:
        if self._model is None:
            raise EmbeddedStackError("the local stack is not running")
        return self._model

    @property
    def resources(self) -> CreatedResources:
        if self._created is None:
            raise EmbeddedStackError("the local stack is not running")
        return self._created

    @property
    def pipes(self) -> tuple[PipeRunner, ...]:
        return tuple(thread.runner for thread in self._pipes)

    @property
    def pollers(self) -> tuple[SqsEventSourcePoller, ...]:
        return tuple(self._pollers)

    @property
    def pipe(self) -> PipeRunner:
        if not self._pipes:
            raise EmbeddedStackError("no pipe is running (no pipe in the template, or no pipeline)")
        return self._pipes[0].runner

    @property
    def poller(self) -> SqsEventSourcePoller:
        if not self._pollers:
            raise EmbeddedStackError("no poller is running (no SQS event source, or no pipeline)")
        return self._pollers[0]

    def client(self, service_name: str) -> Any:
        """A boto3 client for the endpoint (cached; boto3 clients are thread-safe)."""
        if self._clients is None:
            raise EmbeddedStackError("the local stack is not running")
        return self._clients.client(service_name)

    # ------------------------------------------------------------------ drain & status

    def drain(self, timeout: float = 30.0) -> None:
        """Return once every write made before the call has gone through the whole pipeline.

        See `orgsync.local.drain`; raises DrainTimeoutError naming what is still pending.
        """
        if not self._pipes and not self._pollers:
            raise EmbeddedStackError("drain needs a running pipeline (run_pipeline=True)")
        with stack_operation():
            drain_pipeline(self._pipes, self._pollers, self._depth, timeout=timeout)

    def reset(self) -> None:
        """A clean stack for the next test: empty tables and queues, the pipe at the stream's end.

        Running invocations finish first (their writes land before the tables are emptied);
        what is still in the queues or unread in the stream is dropped, not delivered; the
        pipe's and poller's counters start from zero. Resources, URLs and ARNs stay as they are.
        """
        with self._lock, stack_operation(), contextlib.ExitStack() as paused:
            model, created = self.model, self.resources
            if self._restarter is not None:
                paused.enter_context(self._restarter.held())  # no chaos restart meanwhile
            for poller in self._pollers:
                paused.enter_context(poller.paused())
            for thread in self._pipes:
                thread.pause()
                paused.callback(thread.resume)
            empty_resources(
                model, created, dynamodb=self.client("dynamodb"), sqs=self.client("sqs")
            )
            for thread in self._pipes:
                thread.runner.skip_to_end()
            for poller in self._pollers:
                poller.reset_counters()

    def _declared_tables(self) -> list[str]:
        tables = [table.name for table in self.model.tables]
        return tables + [thread.runner.settings.checkpoint_table for thread in self._pipes]

    def _missing_tables(self) -> list[str]:
        return missing_tables(self.client("dynamodb"), self._declared_tables())

    def recreate_missing(self) -> tuple[str, ...]:
        """Create again what the template declares and the endpoint lacks; returns what it made.

        A recreated table has a new stream: its pipe starts over on it (from the template's
        StartingPosition, as a new pipe would). A recreated queue has its old URL, so the poller
        and the pipe's target find it again by themselves.
        """
        with self._lock, stack_operation():
            missing = self.status().missing
            if not missing:
                return ()
            model = self.model
            created = create_resources(
                model, dynamodb=self.client("dynamodb"), sqs=self.client("sqs")
            )
            self._shorten_visibility(model, created)
            previous, self._created = self.resources, created
            for index, pipe in enumerate(model.pipes):
                table = model.table_named(pipe.source_table_name)
                if created.stream_arns.get(table.logical_id) == previous.stream_arns.get(
                    table.logical_id
                ):
                    continue
                factory = self._runner_factory(model, created, pipe)
                self._runner_factories[index] = factory
                self._pipes[index].restart(factory)
            for thread in self._pipes:
                thread.runner.ensure_checkpoint_table()
            logger.warning("recreated %s", ", ".join(missing))
            return missing

    def _depth(self, queue_url: str) -> QueueDepth:
        return read_queue_depth(self.client("sqs"), queue_url)

    def status(self) -> StackStatus:
        """Queue and DLQ depths, each pipe's per-shard position, each poller's counters.

        A table or queue a client deleted is listed in `missing`, not raised: the stack runs on.
        """
        with stack_operation():
            return self._status()

    def _status(self) -> StackStatus:
        created = self.resources
        queues: list[QueueDepth] = []
        missing = self._missing_tables()
        for queue in self.model.queues:
            try:
                queues.append(self._depth(created.queue_urls[queue.logical_id]))
            except QueueMissingError:
                missing.append(queue.name)
        store = self.options.store if self._store is not None else "external"
        return StackStatus(
            missing=tuple(missing),
            endpoint_url=self.endpoint_url,
            store=store,
            queues=tuple(queues),
            pipes=tuple(pipe_status(thread) for thread in self._pipes),
            pollers=tuple(poller_status(poller) for poller in self._pollers),
            faults=self._chaos.counts() if self._chaos is not None else {},
        )


def _waker(thread: PipeThread) -> Callable[[], None]:
    def wake() -> None:
        thread.runner.wake()  # the thread's runner of the moment: a restart replaces it

    return wake


def _restart_poller(poller: SqsEventSourcePoller) -> Callable[[], None]:
    def restart() -> None:
        poller.stop()  # a running invocation finishes and deletes first, as at a scale-in
        poller.start()

    return restart
