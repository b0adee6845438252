"""Adaptations of Beam's local streaming runner (the BundleBasedDirectRunner), applied only under it.

``props stream`` on the DirectRunner runs on one worker thread; measured here, Beam 2.77's evaluator
re-inspected, re-pickled and re-set-up every DoFn per bundle and pulled Pub/Sub 10 messages at a time
with a 30 s blocking pull (see :func:`speed_up_direct_runner`). These patches replace private Beam
internals, so they are:

* applied only when the job runs on the DirectRunner (:func:`apply_for`); Dataflow and the batch
  FnApiRunner never see them;
* checked before they are applied (:func:`check_beam_internals`): every attribute they replace must
  exist with the signature they were written against, else :class:`DirectRunnerPatchError` names what
  changed (a Beam upgrade fails loudly at launch and in ``tests/test_direct_runner.py``, never silently
  half-patched).

Usage (the streaming command)::

    from pipeline.io import direct_runner
    direct_runner.apply_for(options)   # no-op unless the runner is the DirectRunner
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any

DIRECT_RUNNERS = ("directrunner", "bundlebaseddirectrunner", "switchingdirectrunner")


class DirectRunnerPatchError(RuntimeError):
    """Beam's DirectRunner internals changed: the local streaming patches no longer fit."""


# (module, attribute path, expected parameter names) of every Beam internal the patches replace or call.
EXPECTED_INTERNALS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("apache_beam.transforms.userstate", "get_dofn_specs", ("dofn",)),
    ("apache_beam.runners.direct.transform_evaluator", "get_dofn_specs", ("dofn",)),
    ("apache_beam.runners.direct.transform_evaluator", "_ParDoEvaluator.__init__",
     ("self", "evaluation_context", "applied_ptransform", "input_committed_bundle", "side_inputs",
      "perform_dofn_pickle_test")),
    ("apache_beam.runners.direct.transform_evaluator", "DoFnRunner.setup", ("self",)),
    ("apache_beam.runners.direct.transform_evaluator", "DoFnRunner.teardown", ("self",)),
    ("apache_beam.transforms.core", "get_function_arguments", ("obj", "func")),
    ("apache_beam.runners.direct.transform_evaluator", "_PubSubReadEvaluator._read_from_pubsub",
     ("self", "timestamp_attribute")),
    ("apache_beam.runners.direct.transform_evaluator", "_PubSubReadEvaluator._get_subscriber_client",
     ("transform",)),
    ("apache_beam.runners.direct.watermark_manager", "_TransformWatermarks.extract_transform_timers",
     ("self",)),
    ("apache_beam.transforms.trigger", "InMemoryUnmergedState.get_timers",
     ("self", "clear", "watermark", "processing_time")),
    ("apache_beam.transforms.trigger", "InMemoryUnmergedState.copy", ("self",)),
    ("apache_beam.runners.direct.direct_userstate", "ReadModifyWriteRuntimeState.read", ("self",)),
    ("apache_beam.runners.direct.direct_userstate", "BagRuntimeState.read", ("self",)),
    ("apache_beam.io.gcp.pubsub", "_PubSubWriteDoFn.setup", ("self",)),
)


def is_direct_runner(options: Any) -> bool:
    """Whether ``options`` run on Beam's DirectRunner (the streaming local runner)."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__ if runner is not None else ""
    return name.lower() in DIRECT_RUNNERS


def _resolve(module: str, path: str) -> Any:
    import importlib

    obj: Any = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def check_beam_internals(expected=EXPECTED_INTERNALS) -> None:
    """Raises DirectRunnerPatchError when a Beam internal the patches rely on is missing or has another
    signature; also checks the pickle-test default the patch flips and the subscription attribute the
    Pub/Sub read uses."""
    problems = []
    for module, path, params in expected:
        try:
            target = _resolve(module, path)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{module}.{path} is missing ({exc})")
            continue
        try:
            names = tuple(inspect.signature(target).parameters)
        except (TypeError, ValueError) as exc:
            problems.append(f"{module}.{path}: no signature ({exc})")
            continue
        if names != params:
            problems.append(f"{module}.{path}{names} != expected {params}")
    if not problems and expected is EXPECTED_INTERNALS:  # the streaming runner's other internals
        from apache_beam.runners.direct import transform_evaluator as te

        if te._ParDoEvaluator.__init__.__defaults__ not in ((True,), (False,)):
            defaults = te._ParDoEvaluator.__init__.__defaults__
            problems.append(f"_ParDoEvaluator.__init__ defaults are {defaults}, expected one boolean "
                            "(perform_dofn_pickle_test)")
        if "self._sub_name" not in inspect.getsource(te._PubSubReadEvaluator.__init__):
            problems.append("_PubSubReadEvaluator no longer sets self._sub_name")
        problems.extend(_timer_internals_problems())
        problems.extend(_walk_and_read_internals_problems())
    if problems:
        import apache_beam

        raise DirectRunnerPatchError(
            f"Beam {apache_beam.__version__}: the local streaming runner patches (pipeline/io/"
            f"direct_runner.py) were written for Beam 2.77's DirectRunner and no longer fit: "
            + "; ".join(problems) + ". Re-measure and adapt them (beam-notes), or pin Beam.")


def _timer_internals_problems() -> list[str]:
    """What :func:`next_timer_due` reads: the evaluation context's per-step keyed states (set by its
    constructor, reached from every evaluator) and each key's ``timers`` map."""
    from apache_beam.runners.direct import evaluation_context as ec
    from apache_beam.runners.direct import transform_evaluator as te
    from apache_beam.transforms import trigger

    problems = []
    if "self._transform_keyed_states =" not in inspect.getsource(ec.EvaluationContext.__init__):
        problems.append("EvaluationContext no longer sets self._transform_keyed_states")
    if "self._evaluation_context =" not in inspect.getsource(te._TransformEvaluator.__init__):
        problems.append("_TransformEvaluator no longer sets self._evaluation_context")
    if not issubclass(ec.DirectUnmergedState, trigger.InMemoryUnmergedState) or (
            "self.timers[window][" not in inspect.getsource(trigger.InMemoryUnmergedState.set_timer)):
        problems.append("the DirectRunner's keyed state no longer keeps its timers in .timers[window]")
    copy_method = trigger.InMemoryUnmergedState.copy  # what _copy_keyed_state replaces (unless it has)
    copy_source = "" if getattr(copy_method, "_props_patched", False) else inspect.getsource(copy_method)
    for needle in ("InMemoryUnmergedState(defensive_copy=self.defensive_copy)", "copy.deepcopy(self.timers)",
                   "copy.deepcopy(self.global_state)", "copy.copy(self.state[window][tag])"):
        if copy_source and needle not in copy_source:
            problems.append(f"InMemoryUnmergedState.copy no longer contains {needle!r}")
    return problems


def _walk_and_read_internals_problems() -> list[str]:
    """What :func:`_timer_walk_skipping_keys_without_timers` and :func:`_shared_state_reads` replace: the
    timer walk's loop over ``self._keyed_states`` calling ``state.get_timers`` with one clock read per key,
    and the read-modify-write cell's ``read`` decoding ``self._value[0]``."""
    from apache_beam.runners.direct import direct_userstate as du
    from apache_beam.runners.direct import watermark_manager as wm

    problems = []
    walk = inspect.getsource(wm._TransformWatermarks.extract_transform_timers)
    for needle in ("self._keyed_states.items()", "state.get_timers(", "processing_time=self._clock.time()",
                   "self._fired_timers.update(fired_timers)"):
        if needle not in walk:
            problems.append(f"_TransformWatermarks.extract_transform_timers no longer contains {needle!r}")
    if "self._value = [self._encode(value)]" not in inspect.getsource(du.ReadModifyWriteRuntimeState.write):
        problems.append("ReadModifyWriteRuntimeState.write no longer stores [self._encode(value)]")
    read = inspect.getsource(du.ReadModifyWriteRuntimeState.read)
    for needle in ("self._current_value_accessor()", "self._decode(self._value[0])"):
        if needle not in read:
            problems.append(f"ReadModifyWriteRuntimeState.read no longer contains {needle!r}")
    bag = inspect.getsource(du.BagRuntimeState.read)
    for needle in ("self._cached_value = self._current_value_accessor()", "self._new_values",
                   "self._cleared", "self._decode(v) for v in encoded_values"):
        if needle not in bag:
            problems.append(f"BagRuntimeState.read no longer contains {needle!r}")
    problems.extend(_empty_output_internals_problems())
    from apache_beam.io.gcp import pubsub as beam_pubsub

    write = beam_pubsub._PubSubWriteDoFn
    if "self._pub_client = " not in inspect.getsource(write.setup) or "future.result(" not in (
            inspect.getsource(write._flush)):
        problems.append("_PubSubWriteDoFn no longer keeps self._pub_client and waits on every publish")
    return problems


def _empty_output_internals_problems() -> list[str]:
    """What :func:`_without_empty_outputs` relies on: ``_ParDoEvaluator.finish_bundle`` returns a
    ``TransformResult`` of every tagged receiver's bundle, the result keeps them in
    ``uncommitted_output_bundles`` and a bundle says whether it ``has_elements``."""
    from apache_beam.runners.direct import bundle_factory, util
    from apache_beam.runners.direct import transform_evaluator as te

    problems = []
    finish = inspect.getsource(te._ParDoEvaluator.finish_bundle)
    for needle in ("bundles = list(self._tagged_receivers.values())", "TransformResult(self, bundles,"):
        if needle not in finish:
            problems.append(f"_ParDoEvaluator.finish_bundle no longer contains {needle!r}")
    if "self.uncommitted_output_bundles = uncommitted_output_bundles" not in inspect.getsource(
            util.TransformResult.__init__):
        problems.append("TransformResult no longer keeps uncommitted_output_bundles")
    if not hasattr(bundle_factory._Bundle, "has_elements"):
        problems.append("_Bundle.has_elements is missing")
    return problems


def _without_empty_outputs(original):
    """``_ParDoEvaluator.finish_bundle`` returning only the output bundles that hold elements. Beam
    committed a bundle for every output tag of every ParDo bundle, empty or not, and scheduled each on
    every consumer: per Pub/Sub read of ~100 odds updates the stream ran ~330 bundles, ~44 of them
    empty dead-letter bundles reaching the dead-letter writer through its Flatten (counted per step under
    1,000 odds/s). An empty bundle carries no element and no watermark hold (holds are the result's,
    kept), so its consumers had nothing to do but the per-bundle cost: a new DoFnRunner, the watermark
    update, the completion callback."""
    if getattr(original, "_props_patched", False):
        return original

    def finish_bundle(self):
        result = original(self)
        result.uncommitted_output_bundles = [
            b for b in result.uncommitted_output_bundles if b.has_elements()]
        return result

    finish_bundle._props_patched = True
    return finish_bundle


def apply_for(options: Any) -> bool:
    """Applies :func:`speed_up_direct_runner` when ``options`` run on the DirectRunner; returns whether
    it did. Any other runner (Dataflow, the batch FnApiRunner) is left untouched."""
    if not is_direct_runner(options):
        return False
    speed_up_direct_runner()
    return True


PULL_MAX_MESSAGES = 100  # per read cycle: the bundle a line move waits behind (500 measured a higher p95)
# The prefetching thread (_Prefetcher) keeps at most this many pulled messages ahead of the read (at
# 1,000 odds/s about half a second; they are acknowledged only once the read takes them).
PREFETCH_LIMIT = 500
# Under load (a message within BUSY_WINDOW_S) a read that finds the buffer empty waits at most this long
# for one (it wakes at once when one arrives; a timer of the job fires at most this late).
BUSY_WAIT_S = 0.02
PULL_RETRIES = 3  # consecutive failed pulls (backing off 0.5, 1, 2 s) before the read raises the error
# The prefetching thread's pull deadline (the emulator holds a pull whose deadline exceeds 1 s for about
# 1 s and answers as soon as a message arrives; real Pub/Sub holds it until a message or the deadline).
# It is also the longest an idle read waits for a message when no timer of the job is due sooner.
IDLE_PULL_TIMEOUT_S = 2.0
# A read that finds no message less than this after the last one waits only BUSY_WAIT_S, not the idle
# wait: under load the subscription is empty now and then, and the long wait that followed held the one
# worker thread ~1 s (measured under 1,000 odds/s: three 1 s stalls a minute, the p99 of a line move).
BUSY_WINDOW_S = 1.0
_READ_CLOCK = {"last_message": float("-inf")}
GC_FREEZE_AFTER_S = 30.0  # the second freeze (see _GcFreeze)


class _GcFreeze:
    """Moves what the job holds after its start (Beam's graph and modules, then the models and a date's
    reference data) out of the cyclic collector's full passes: ``gc.freeze()`` at the first Pub/Sub read
    and again ``GC_FREEZE_AFTER_S`` later, each after a full collection. A full collection of the running
    job walked ~270k long-lived objects, 150-200 ms every 2-5 s under 1,000 odds/s, with the one worker
    thread stopped (the p95 of a line move); after the freeze ~25 ms. Frozen objects are still freed by
    reference counting; only a reference cycle among them that becomes garbage later stays (bounded: two
    freezes per process)."""

    def __init__(self):
        self.due: list[float] | None = None

    def maybe_freeze(self, now: float) -> None:
        import gc

        if self.due is None:
            self.due = [now, now + GC_FREEZE_AFTER_S]
        if self.due and now >= self.due[0]:
            self.due.pop(0)
            gc.collect()
            gc.freeze()


_GC = _GcFreeze()


class _Acknowledger:
    """Acknowledges pulled messages on a daemon thread instead of the runner's one worker thread (the
    acknowledge round trip was ~3.4 % of its samples under 1,000 odds/s, waiting). The read acknowledged
    each pull right after it, before processing, as Beam's reader does; here that happens a moment later
    or, when the process stops first, not at all: the subscription then redelivers those messages to the
    next job, which takes them as replays (a replayed snapshot changes nothing, a re-written row is
    idempotent). A failed acknowledgement is counted in ``failures`` and logged as a warning: those
    messages come back the same way."""

    def __init__(self):
        import threading

        self._lock = threading.Lock()
        self._queue = None
        self.failures = 0

    def submit(self, client, subscription: str, ack_ids: list[str]) -> None:
        import queue
        import threading

        with self._lock:
            if self._queue is None:
                self._queue = queue.Queue()
                threading.Thread(target=self._run, name="props-pubsub-ack", daemon=True).start()
        self._queue.put((client, subscription, ack_ids))

    def flush(self) -> None:
        """Waits until every submitted acknowledgement was sent (tests)."""
        if self._queue is not None:
            self._queue.join()

    def _run(self) -> None:
        import logging

        while True:
            client, subscription, ack_ids = self._queue.get()
            try:
                client.acknowledge(subscription=subscription, ack_ids=ack_ids)
            except Exception as exc:  # noqa: BLE001 - the messages are redelivered; the job goes on
                self.failures += 1
                logging.getLogger(__name__).warning(
                    "acknowledging %d messages of %s failed (they will be redelivered): %s",
                    len(ack_ids), subscription, exc)
            finally:
                self._queue.task_done()


_ACKS = _Acknowledger()


class _Prefetcher:
    """Pulls one subscription on a daemon thread into a bounded buffer the Pub/Sub read takes from.

    The read pulled on the runner's one worker thread, which then waited for the emulator's answer: under
    1,000 odds/s ~30 % of that thread's wall time (a ~6 ms round trip per read of ~20 messages) with
    nothing else running. Here a thread pulls (``PULL_MAX_MESSAGES`` per pull, holding an empty pull up
    to ``idle_pull_timeout_s``), turns each message into ``(timestamp, PubsubMessage)`` and keeps at most
    ``PREFETCH_LIMIT`` of them; :meth:`take` hands the read what is there, waiting at most ``wait_s``
    (woken the moment a message arrives). Messages are acknowledged when taken, not when pulled: the
    ones still buffered when the process stops are redelivered to the next job. A failed pull is counted
    in ``failures``, logged as a warning and retried (backing off); after ``PULL_RETRIES`` consecutive
    failures :meth:`take` raises the error, which fails the read as a failed pull always did."""

    def __init__(self, client, subscription: str, timestamp_attribute: str | None, *, max_messages: int,
                 pull_timeout_s: float, limit: int = PREFETCH_LIMIT):
        import collections
        import threading

        self.client, self.subscription, self.limit = client, subscription, limit
        self._timestamp_attribute = timestamp_attribute
        self._max_messages, self._pull_timeout_s = max_messages, pull_timeout_s
        self._buffer: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self.failures = 0
        self.error: BaseException | None = None
        self._failing, self._closed = 0, False
        self._thread = threading.Thread(target=self._run, name=f"props-pubsub-pull {subscription}",
                                         daemon=True)
        self._thread.start()

    def take(self, n: int, wait_s: float) -> list[tuple[Any, Any, str]]:
        """Up to ``n`` buffered ``(timestamp, message, ack_id)``, waiting at most ``wait_s`` for one."""
        with self._cond:
            if not self._buffer and self.error is None and wait_s > 0:
                self._cond.wait_for(lambda: self._buffer or self.error is not None, timeout=wait_s)
            if not self._buffer and self.error is not None:
                raise RuntimeError(f"pulling {self.subscription} failed {self._failing} times in a row: "
                                   f"{self.error!r}") from self.error
            out = [self._buffer.popleft() for _ in range(min(n, len(self._buffer)))]
            if out:
                self._cond.notify_all()  # room for the puller
            return out

    def buffered(self) -> int:
        with self._cond:
            return len(self._buffer)

    def close(self) -> None:
        """Stops pulling (after the pull in flight, whose messages stay unacknowledged: redelivered)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _element(self, rm) -> tuple[Any, Any, str]:
        from apache_beam.io.gcp.pubsub import PubsubMessage
        from apache_beam.utils.timestamp import Timestamp

        from pipeline.io.pubsub import BAD_TIMESTAMP_ATTR, attribute_timestamp  # not for batch commands

        msg = _message_from_pb(PubsubMessage, rm)
        attr = self._timestamp_attribute
        raw = (msg.attributes or {}).get(attr) if attr else None
        ts = None
        if raw is not None:
            ts = attribute_timestamp(raw)  # None when malformed or out of range (never raises)
            if ts is None:
                msg = PubsubMessage(msg.data, {**msg.attributes, BAD_TIMESTAMP_ATTR: raw})
        if ts is None:
            ts = Timestamp.from_utc_datetime(rm.message.publish_time)
        return ts, msg, rm.ack_id

    def _run(self) -> None:
        import logging
        import time

        from google.api_core.exceptions import DeadlineExceeded

        while True:
            with self._cond:
                self._cond.wait_for(lambda: len(self._buffer) < self.limit or self._closed)
                if self._closed:
                    return
            try:
                received = self.client.pull(subscription=self.subscription, max_messages=self._max_messages,
                                            timeout=self._pull_timeout_s).received_messages
            except DeadlineExceeded:
                continue
            except Exception as exc:  # noqa: BLE001 - counted, retried, then raised by take()
                self.failures += 1
                self._failing += 1
                logging.getLogger(__name__).warning("pulling %s failed (%d in a row): %s",
                                                    self.subscription, self._failing, exc)
                if self._failing > PULL_RETRIES:
                    with self._cond:
                        self.error = exc
                        self._cond.notify_all()
                time.sleep(min(0.5 * 2 ** (self._failing - 1), 2.0))
                continue
            elements = [self._element(rm) for rm in received]
            with self._cond:
                self._failing, self.error = 0, None
                self._buffer.extend(elements)
                if elements:
                    self._cond.notify_all()


_PREFETCHERS: dict[str, _Prefetcher] = {}


def prefetcher(client, subscription: str, timestamp_attribute: str | None, **kwargs) -> _Prefetcher:
    """The process's one :class:`_Prefetcher` of a subscription (started on the first read)."""
    found = _PREFETCHERS.get(subscription)
    if found is None:
        found = _PREFETCHERS[subscription] = _Prefetcher(client, subscription, timestamp_attribute, **kwargs)
    return found


def next_timer_due(evaluation_context: Any) -> float | None:
    """The earliest timestamp (seconds since the epoch) of any timer set in the local runner: every
    stateful step's processing-time and event-time timers and the triggers' (the Pub/Sub source's
    watermark is wall-clock time, so an event-time timer is due at about that wall time); None when no
    timer is set. Walks every key's timers: called only when the subscription was found empty."""
    due = None
    for keyed in evaluation_context._transform_keyed_states.values():
        for state in list(keyed.values()):
            for timers in list(state.timers.values()):
                for ts in list(timers.values()):
                    t = float(ts)
                    if due is None or t < due:
                        due = t
    return due


class _InstanceMemo:
    """A memo keyed by object identity that never pins its keys: an entry leaves with its object (weak
    reference callback), so an id is never reused while its entry exists. Objects without weak
    references are not memoised (``get`` misses, ``put`` ignores them)."""

    def __init__(self):
        self._entries: dict[int, tuple[Any, Any]] = {}  # id(obj) -> (weakref to obj, value)

    def get(self, obj, default=None):
        hit = self._entries.get(id(obj))
        return hit[1] if hit is not None and hit[0]() is obj else default

    def put(self, obj, value) -> None:
        key = id(obj)
        try:
            ref = weakref.ref(obj, lambda _ref, k=key: self._entries.pop(k, None))
        except TypeError:
            return
        self._entries[key] = (ref, value)


def _make_reusing_runner(base: type) -> type:
    """A ``DoFnRunner`` subclass that sets a DoFn up once (per instance) and never tears it down per
    bundle: the DoFn lifecycle of Dataflow (setup once, many bundles). With the pickle test off every
    bundle of a step runs the step's own DoFn instance, so this is one ``setup`` per step."""
    if getattr(base, "_props_reusing", False):
        return base
    set_up = _InstanceMemo()

    class ReusingDoFnRunner(base):
        _props_reusing = True

        def __init__(self, fn, *args, **kwargs):
            super().__init__(fn, *args, **kwargs)
            self._props_fn = fn

        def setup(self):
            if not set_up.get(self._props_fn, False):
                super().setup()
                set_up.put(self._props_fn, True)

        def teardown(self):
            pass

    return ReusingDoFnRunner


def _memoised_function_arguments(original):
    """``core.get_function_arguments(obj, name)`` memoised per (object, method name): ``DoFnRunner``
    (compiled, so its ``DoFnSignature`` cannot be swapped) re-inspected every method of the DoFn with
    ``inspect.signature`` for every bundle. The answer depends only on the object's methods, which do
    not change; each caller gets fresh lists. A method the class defines (no ``_inspect_<name>`` hook,
    not overridden on the instance) has the same arguments for every instance, so it is memoised per
    class: the signature also inspects a new watermark-estimator provider per bundle."""
    if getattr(original, "_props_memoised", False):
        return original
    memo = _InstanceMemo()
    per_class: dict[tuple[type, str], tuple] = {}

    def get_function_arguments(obj, func):
        if not hasattr(obj, f"_inspect_{func}") and func not in getattr(obj, "__dict__", {}):
            key = (type(obj), func)
            if key not in per_class:
                per_class[key] = original(obj, func)
            args, defaults = per_class[key]
            return list(args), list(defaults)
        per_obj = memo.get(obj)
        if per_obj is None:
            per_obj = {}
            memo.put(obj, per_obj)
        if func not in per_obj:
            per_obj[func] = original(obj, func)
        args, defaults = per_obj[func]
        return list(args), list(defaults)

    get_function_arguments._props_memoised = True
    return get_function_arguments


def _timer_walk_skipping_keys_without_timers(original):
    """``_TransformWatermarks.extract_transform_timers`` as Beam 2.77 has it, except that a key without
    any timer is skipped (Beam called ``get_timers`` for it, which found nothing) and the processing
    clock is read once per walk instead of once per key. The monitor walks every key of every stateful
    step on every cycle, and the keys of a night (player-games, scoring-join versions) stay in the
    runner's keyed states after their timers are gone: ~17 % of the worker thread under 1,000 odds/s."""
    if getattr(original, "_props_patched", False):
        return original
    from apache_beam.runners.direct.watermark_manager import TimerFiring

    def extract_transform_timers(self):
        with self._lock:
            fired_timers = []
            has_realtime_timer = False
            now = None
            for encoded_key, state in self._keyed_states.items():
                if not state.timers:
                    continue
                if now is None:
                    now = self._clock.time()
                timers, had_realtime_timer = state.get_timers(watermark=self._input_watermark,
                                                              processing_time=now)
                if had_realtime_timer:
                    has_realtime_timer = True
                for expired in timers:
                    window, (name, time_domain, timestamp, dynamic_timer_tag) = expired
                    fired_timers.append(TimerFiring(encoded_key, window, name, time_domain, timestamp,
                                                    dynamic_timer_tag=dynamic_timer_tag))
            self._fired_timers.update(fired_timers)
            return fired_timers, has_realtime_timer

    extract_transform_timers._props_patched = True
    return extract_transform_timers


SHARED_READS_ATTR = "props_shared_reads"  # set on a ReadModifyWriteStateSpec: True, or how many to keep
WRITE_THROUGH_ATTR = "props_write_through"  # set True with it: a written value is what the next read gets
SHARED_READS_KEPT = 16  # decoded values kept per state spec (when the spec does not say)

_SHARED_MEMOS: dict[int, tuple[Any, Any]] = {}  # id(spec) -> (spec, OrderedDict bytes -> decoded)


def _shared_memo(spec):
    import collections

    entry = _SHARED_MEMOS.get(id(spec))
    if entry is None or entry[0] is not spec:
        entry = _SHARED_MEMOS[id(spec)] = (spec, collections.OrderedDict())
    return entry[1]


def _remember(spec, memo, encoded, value) -> None:
    kept = getattr(spec, SHARED_READS_ATTR)
    kept = kept if type(kept) is int else SHARED_READS_KEPT
    memo[encoded] = value
    while len(memo) > kept:
        memo.popitem(last=False)


def _shared_state_reads(original):
    """``ReadModifyWriteRuntimeState.read`` that decodes a stored value once: for a state spec with
    ``SHARED_READS_ATTR`` set (its DoFn never changes a value it read in place; it writes a new one),
    every read of the same stored bytes returns the same decoded object (the last ``SHARED_READS_KEPT``
    per spec, or as many as the attribute says). Other specs decode on every read, as Beam does. The
    date's state of the stream (``transforms.streaming.DATE_REF``, read by every event of the date) cost
    ~16 % of the worker thread in decoding under 1,000 odds/s."""
    if getattr(original, "_props_patched", False):
        return original

    from apache_beam.runners.direct.direct_userstate import UNREAD_VALUE

    def read(self):
        spec = self._state_spec
        if not getattr(spec, SHARED_READS_ATTR, False):
            return original(self)
        if self._cleared:
            return None
        if self._value is UNREAD_VALUE:
            self._value = self._current_value_accessor()
        if not self._value:
            return None
        encoded = self._value[0]
        if type(encoded) is _Held:  # written through (see _write_through)
            return encoded.value
        memo = _shared_memo(spec)
        if encoded in memo:
            memo.move_to_end(encoded)
            return memo[encoded]
        value = self._decode(encoded)
        _remember(spec, memo, encoded, value)
        return value

    read._props_patched = True
    return read


ENCODE_EVERY_WRITE_ENV = "PROPS_ENCODE_EVERY_STATE_WRITE"  # "1": write-through cells encoded as Beam does


class _Held:
    """The value a write-through cell stores on the local runner instead of its encoding (see
    :func:`_write_through`)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


_ENCODE_CHECKED: dict[int, Any] = {}  # id(spec) -> spec: the specs whose first written value was encoded


def _write_through(original):
    """``ReadModifyWriteRuntimeState.write`` for a spec with ``WRITE_THROUGH_ATTR`` and ``SHARED_READS_ATTR``
    set (its DoFn writes the cell last and never changes in place what it wrote or read: the
    player-game's ``info`` and ``book`` cells, read and written by every event of the player-game): the
    cell stores the written value itself (:class:`_Held`), and the next read returns it, neither encoded
    nor decoded. The local runner keeps state in memory only (a restarted local job rebuilds from the
    warehouse), so the bytes were never read back: encoding them was ~9 % of the worker thread under
    1,000 odds/s (py-spy, the load's first pass). The coder is still exercised: the first value written
    to each spec in the process is encoded and decoded, and with ``PROPS_ENCODE_EVERY_STATE_WRITE=1`` (the
    test suite sets it: what Dataflow does) every write is encoded as Beam does, the decoded value kept
    for the next read (bounded by the spec's count). Other specs are written as Beam writes them."""
    if getattr(original, "_props_patched", False):
        return original
    import os

    def write(self, value):
        spec = self._state_spec
        if not (getattr(spec, WRITE_THROUGH_ATTR, False) and getattr(spec, SHARED_READS_ATTR, False)):
            return original(self, value)
        if os.environ.get(ENCODE_EVERY_WRITE_ENV) == "1":
            original(self, value)
            memo = _shared_memo(spec)
            encoded = self._value[0]
            memo.pop(encoded, None)
            _remember(spec, memo, encoded, value)
            return
        if _ENCODE_CHECKED.get(id(spec)) is not spec:
            self._decode(self._encode(value))  # the coder takes this cell's values (raises if not)
            _ENCODE_CHECKED[id(spec)] = spec
        self._cleared = False
        self._modified = True
        self._value = [_Held(value)]

    write._props_patched = True
    return write


SHARED_BAG_READS_KEPT = 8192  # decoded bag elements kept per state spec (the memo is emptied when full)


def _shared_bag_reads(original):
    """``BagRuntimeState.read`` that decodes each stored element once: for a bag spec with
    ``SHARED_READS_ATTR`` set (its DoFn never changes an element it read in place), every read of the same
    stored bytes returns the same decoded object (up to ``SHARED_BAG_READS_KEPT`` per spec). The date's
    best bets (``transforms.streaming.DATE_ENTRIES``) decode every entry of the date at every
    recomputation (five a second with a 0.2 s debounce): ~15 % of the worker thread under 700 odds/s."""
    if getattr(original, "_props_patched", False):
        return original
    import itertools

    from apache_beam.runners.direct.direct_userstate import UNREAD_VALUE

    memos: dict[int, tuple[Any, dict]] = {}  # id(spec) -> (spec, bytes -> decoded)

    def read(self):
        spec = self._state_spec
        if not getattr(spec, SHARED_READS_ATTR, False):
            return original(self)
        if self._cached_value is UNREAD_VALUE:
            self._cached_value = self._current_value_accessor()
        encoded_values = (self._new_values if self._cleared
                          else itertools.chain(self._cached_value, self._new_values))
        entry = memos.get(id(spec))
        if entry is None or entry[0] is not spec:
            entry = memos[id(spec)] = (spec, {})
        memo, decode = entry[1], self._decode

        def decoded(encoded):
            value = memo.get(encoded)
            if value is None:
                if len(memo) >= SHARED_BAG_READS_KEPT:
                    memo.clear()
                value = memo[encoded] = decode(encoded)
            return value

        return (decoded(v) for v in encoded_values)

    read._props_patched = True
    return read


def _copy_keyed_state(original):
    """``InMemoryUnmergedState.copy`` (the runner's copy of a key's committed state, once per key and
    bundle) giving the same copy without ``copy.deepcopy``: the timers are ``{window: {(name, domain,
    tag): Timestamp}}`` of immutable keys and values, so a new dict per window is the deep copy; the
    global state (empty for user state) is deep-copied as before when it holds anything; each tag's
    values are copied as Beam copies them."""
    if getattr(original, "_props_patched", False):
        return original
    import copy as copy_module

    from apache_beam.transforms.trigger import InMemoryUnmergedState

    def copy(self):
        cloned = InMemoryUnmergedState(defensive_copy=self.defensive_copy)
        for window, timers in self.timers.items():
            cloned.timers[window] = dict(timers)
        if self.global_state:
            cloned.global_state = copy_module.deepcopy(self.global_state)
        for window, tags in self.state.items():
            target = cloned.state[window]
            for tag, values in tags.items():
                target[tag] = values.copy() if type(values) is list else copy_module.copy(values)
        return cloned

    copy._props_patched = True
    return copy


def _message_from_pb(message_cls, received):
    """``PubsubMessage._from_message(received.message)`` read from the raw protobuf of a pulled
    ``ReceivedMessage``: the same data, attributes and message id (publish time as a datetime) without
    proto-plus's per-field marshalling (~4 % of the worker thread under 1,000 odds/s)."""
    import datetime as dt

    pb = type(received).pb(received).message
    msg = message_cls(pb.data, dict(pb.attributes))
    if pb.message_id:
        msg.message_id = pb.message_id
    if pb.HasField("publish_time"):
        msg.publish_time = pb.publish_time.ToDatetime(tzinfo=dt.UTC)
    if pb.ordering_key:
        msg.ordering_key = pb.ordering_key
    return msg


def _publish_at_once(setup):
    """``_PubSubWriteDoFn.setup`` whose publisher sends a batch as soon as a message is in it: the DoFn
    waits on every message's future at the end of each bundle anyway, so the batch's wait for more
    messages (``max_latency``, 10 ms by default) only delayed each bundle's messages."""
    if getattr(setup, "_props_patched", False):
        return setup

    def wrapped(self):
        setup(self)
        client = self._pub_client
        client.batch_settings = client.batch_settings._replace(max_latency=0.0)

    wrapped._props_patched = True
    return wrapped


# The Beam internals memoise_dofn_inspection replaces (a subset of EXPECTED_INTERNALS).
INSPECTION_INTERNALS = tuple(e for e in EXPECTED_INTERNALS
                             if e[1] in ("get_dofn_specs", "get_function_arguments"))


def memoise_dofn_inspection() -> None:
    """Memoises Beam's inspection of DoFn methods (every runner; the SDK, not a runner, does it):
    ``userstate.get_dofn_specs`` per DoFn class (the specs are class-level method defaults, so this is
    exact; a DoFn with bound methods on the instance is memoised per instance) and
    ``core.get_function_arguments`` per object and method (:func:`_memoised_function_arguments`). Beam
    re-inspected every method of every DoFn with ``inspect.signature`` wherever it asked: building the
    11-game slate's graph and stages made 400 ``get_dofn_specs`` and 12,510 ``get_function_arguments``
    calls (~0.3 s of its ~4-5 s); the streaming DirectRunner asked per bundle (~60 % of its CPU before
    this). Idempotent. Raises DirectRunnerPatchError when those internals changed."""
    import types

    from apache_beam.runners.direct import transform_evaluator as te
    from apache_beam.transforms import core, userstate

    if getattr(userstate.get_dofn_specs, "_props_memoised", False):
        return
    check_beam_internals(INSPECTION_INTERNALS)
    original = userstate.get_dofn_specs
    cache: dict[type, Any] = {}
    by_instance = _InstanceMemo()

    def get_dofn_specs(dofn):
        specs = by_instance.get(dofn)
        if specs is not None:
            return specs
        if any(isinstance(v, types.MethodType) for v in getattr(dofn, "__dict__", {}).values()):
            specs = original(dofn)
        else:
            cls = type(dofn)
            if cls not in cache:
                cache[cls] = original(dofn)
            specs = cache[cls]
        by_instance.put(dofn, specs)
        return specs

    get_dofn_specs._props_memoised = True
    userstate.get_dofn_specs = get_dofn_specs
    te.get_dofn_specs = get_dofn_specs
    core.get_function_arguments = _memoised_function_arguments(core.get_function_arguments)


def speed_up_direct_runner(pull_max_messages: int = PULL_MAX_MESSAGES,
                           idle_pull_timeout_s: float = IDLE_PULL_TIMEOUT_S,
                           busy_window_s: float = BUSY_WINDOW_S) -> None:
    """Local streaming only: adaptations of the BundleBasedDirectRunner (Dataflow is untouched).

    Measured here with py-spy on ``props stream`` (a replayed day): the job absorbed ~10 events/s.
    1. ``userstate.get_dofn_specs`` re-inspected every DoFn's method signatures for every bundle and every
       consumer scheduled (~60 % of the CPU): memoised per DoFn class (the specs are class-level method
       defaults, so this is exact; a DoFn with bound methods on the instance is not cached).
    2. ``_ParDoEvaluator`` pickled and unpickled every DoFn for every bundle (a "pickle test"), so
       ``setup`` - and RunInference's model acquisition - ran per bundle: the test is turned off, DoFns are
       reused across bundles as Dataflow does.
    3. The Pub/Sub read pulled at most 10 messages per read cycle with a 30 s blocking pull on the one
       worker thread: when the topic was idle, an update waited up to 30 s behind the next empty pull
       (measured: every isolated line move took ~30 s to reach picks-changes). It now takes up to
       ``pull_max_messages`` from a thread that pulls ahead (item 13). It also
       failed the whole job on a malformed ``event_ts`` attribute: such a message is kept at its publish
       time with attribute ``props_bad_event_ts`` and ParseMessageFn dead-letters it.
    4. Even with the DoFns reused, the evaluator called ``setup`` before and ``teardown`` after every
       bundle, and the stateful steps and ScorePlayers' CoGroupByKey run one bundle per key (per
       player-game, per emission): RunInference's ``setup`` re-acquired the shared model through the
       multiprocessing manager's sockets (measured with py-spy under 300 odds/s: ~75 % of the worker
       thread's wall time, the job absorbing ~170/s at ~20 % CPU), and ``WriteToPubSub`` built a new
       PublisherClient per bundle. ``setup`` now runs once per DoFn instance and ``teardown`` is left to
       process exit, the DoFn lifecycle Dataflow has (see :func:`_make_reusing_runner`).
    5. The per-bundle ``DoFnRunner`` re-inspected every DoFn method with ``inspect.signature``
       (``core.get_function_arguments``, ~20 % of the worker thread at 600 odds/s): memoised per object
       and method name (see :func:`_memoised_function_arguments`).
    Measured (bench/bench_stream_throughput.py, --seconds 15): before 4. and 5. the job absorbed ~165/s
    with the backlog growing from 200/s; after, 400/s keeps up (drained 0.4 s after the last publish).
    6. An idle job burned most of a core (bench/bench_stream_idle.py: 58-85 % of one core with no
       message). py-spy: the emulator answers a pull whose deadline is 1 s or less at once, so the read
       cycled ~100 times a second, each cycle re-computing the watermarks of the whole graph (the
       source watermark is wall-clock time, so it advanced every cycle: ~60 % of the thread), the pull
       itself (~25 %) and the evaluator's PipelineOptions (~9 %). Now a read that finds nothing waits
       for the next message (up to ``idle_pull_timeout_s``; woken the moment one arrives, so it is not
       delayed) but never past the next timer of the job (a debounce, a scoring timeout, a trigger:
       :func:`next_timer_due`), which the one worker thread would otherwise fire late. Idle: under 1 %
       of one core.
    7. Under 1,000 odds/s (the 11-game night) the monitor's timer walk called ``get_timers`` for every
       key of every stateful step on every cycle, with a clock read per key (~17 % of the worker thread):
       keys without timers are skipped (:func:`_timer_walk_skipping_keys_without_timers`).
    8. Every event of a date decoded the date's whole state cell (~16 %): a cell whose DoFn never changes
       what it read in place is decoded once per stored value (:func:`_shared_state_reads`).
    9. The date's best bets decoded every entry of its bag at every recomputation (~15 % under 700
       near-tip-off odds/s): a bag whose DoFn never changes what it read decodes each element once
       (:func:`_shared_bag_reads`).
    10. Every ParDo bundle committed an output bundle per output tag, empty or not, and each was run by
       every consumer (most of the ~330 bundles per Pub/Sub read under 1,000 odds/s): empty output
       bundles are dropped (:func:`_without_empty_outputs`).
    11. Every event of a player-game decoded its ``info`` and ``book`` cells (~13 % of the worker thread
       under 1,000 odds/s): for a spec marked write-through, the next read gets the value written
       (:func:`_write_through`). Encoding what it wrote was still ~9 % under the load's first pass: such
       a cell now stores the value itself (the local runner's state is in memory only); the coder is
       exercised on the first value per spec, and on every write with ``PROPS_ENCODE_EVERY_STATE_WRITE=1``.
    12. Under load an empty pull was followed by the long idle pull (~1 s stalls of the worker thread):
       not within ``busy_window_s`` of the last message. And the cyclic collector's full passes over the
       job's long-lived objects stopped the thread 150-200 ms every few seconds: they are frozen at the
       first read and once more later (:class:`_GcFreeze`). Pulled messages are acknowledged on a
       daemon thread (:class:`_Acknowledger`).
    13. The read's pull then still held the worker thread for the emulator's answer (~6 ms per read,
       ~30 % of its wall time under 1,000 odds/s): a daemon thread pulls ahead into a bounded buffer and
       the read takes from it (:class:`_Prefetcher`).
    14. ``WriteToPubSub`` waits for every message of a bundle to be sent, yet its publisher held each
       batch open for the client library's default 10 ms first (a line move's change message included):
       sent at once (:func:`_publish_at_once`).
    15. The first state access of a key in a bundle copies the key's committed state, deep-copying its
       timers (a ``defaultdict``: pickle's reconstruct path) and global state even when empty (~5 % of
       the worker thread under the load's first pass): :func:`_copy_keyed_state`.
    """
    from apache_beam.runners.direct import transform_evaluator as te

    if getattr(te.DoFnRunner, "_props_reusing", False):
        return
    check_beam_internals()
    memoise_dofn_inspection()  # 1. and 5.

    init = te._ParDoEvaluator.__init__
    if init.__defaults__ == (True,):
        init.__defaults__ = (False,)
    te.DoFnRunner = _make_reusing_runner(te.DoFnRunner)
    te._ParDoEvaluator.finish_bundle = _without_empty_outputs(te._ParDoEvaluator.finish_bundle)

    def read_from_pubsub(self, timestamp_attribute):
        import time

        sub_client = self._get_subscriber_client(self._applied_ptransform)
        source = prefetcher(sub_client, self._sub_name, timestamp_attribute, max_messages=pull_max_messages,
                            pull_timeout_s=idle_pull_timeout_s)
        _GC.maybe_freeze(time.monotonic())
        wait = BUSY_WAIT_S
        if not source.buffered() and time.monotonic() - _READ_CLOCK["last_message"] >= busy_window_s:
            due = next_timer_due(self._evaluation_context)
            # idle: wait for the next message (no busy loop), unless a timer of the job is due first
            wait = idle_pull_timeout_s if due is None else min(idle_pull_timeout_s, due - time.time())
        taken = source.take(pull_max_messages, wait)
        if not taken:
            return []
        _READ_CLOCK["last_message"] = time.monotonic()
        _ACKS.submit(sub_client, self._sub_name, [ack_id for _, _, ack_id in taken])
        return [(ts, msg) for ts, msg, _ in taken]

    te._PubSubReadEvaluator._read_from_pubsub = read_from_pubsub
    from apache_beam.io.gcp import pubsub as beam_pubsub

    beam_pubsub._PubSubWriteDoFn.setup = _publish_at_once(beam_pubsub._PubSubWriteDoFn.setup)

    from apache_beam.runners.direct import direct_userstate, watermark_manager

    watermarks = watermark_manager._TransformWatermarks
    watermarks.extract_transform_timers = _timer_walk_skipping_keys_without_timers(
        watermarks.extract_transform_timers)
    rmw = direct_userstate.ReadModifyWriteRuntimeState
    rmw.read = _shared_state_reads(rmw.read)
    rmw.write = _write_through(rmw.write)
    bag = direct_userstate.BagRuntimeState
    bag.read = _shared_bag_reads(bag.read)
    from apache_beam.transforms import trigger

    trigger.InMemoryUnmergedState.copy = _copy_keyed_state(trigger.InMemoryUnmergedState.copy)
