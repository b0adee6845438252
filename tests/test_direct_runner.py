"""The local streaming runner's patches (pipeline/io/direct_runner.py): applied only under the
DirectRunner, and a loud error when the Beam internals they replace change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from apache_beam.runners.direct import transform_evaluator as te

from pipeline.commands.common import parse_options
from pipeline.io import direct_runner, pubsub

REPO = Path(__file__).resolve().parents[1]


def test_the_installed_beam_has_every_internal_the_patches_replace():
    direct_runner.check_beam_internals()


def test_a_changed_signature_fails_loudly(monkeypatch):
    def read_from_pubsub(self, timestamp_attribute, max_messages):  # a future Beam's shape
        return []

    monkeypatch.setattr(te._PubSubReadEvaluator, "_read_from_pubsub", read_from_pubsub)
    with pytest.raises(direct_runner.DirectRunnerPatchError, match="_PubSubReadEvaluator._read_from_pubsub"):
        direct_runner.check_beam_internals()


def test_a_missing_internal_fails_loudly(monkeypatch):
    monkeypatch.delattr(te._PubSubReadEvaluator, "_get_subscriber_client")
    with pytest.raises(direct_runner.DirectRunnerPatchError, match="_get_subscriber_client is missing"):
        direct_runner.check_beam_internals()


def test_a_changed_evaluator_constructor_fails_before_anything_is_patched(monkeypatch):
    original_read = te._PubSubReadEvaluator._read_from_pubsub

    def init(self, evaluation_context, applied_ptransform, input_committed_bundle, side_inputs):
        pass

    monkeypatch.setattr(te._ParDoEvaluator, "__init__", init)
    with pytest.raises(direct_runner.DirectRunnerPatchError, match="_ParDoEvaluator.__init__"):
        direct_runner.speed_up_direct_runner()
    assert te._PubSubReadEvaluator._read_from_pubsub is original_read  # nothing half-patched


@pytest.mark.parametrize("runner", ["DataflowRunner", "FnApiRunner"])
def test_other_runners_are_left_untouched(runner):
    before = te._PubSubReadEvaluator._read_from_pubsub
    options = parse_options([f"--runner={runner}", "--project=props-test-proj"])
    assert direct_runner.apply_for(options) is False
    assert te._PubSubReadEvaluator._read_from_pubsub is before


def test_the_direct_runner_gets_the_patches():
    # In a subprocess: the patches are process-wide and this test process runs other pipelines.
    code = ("from apache_beam.runners.direct import transform_evaluator as te\n"
            "from pipeline.commands.common import parse_options\n"
            "from pipeline.io import direct_runner\n"
            "print(direct_runner.apply_for(parse_options(['--runner=DirectRunner'])),\n"
            "      te._PubSubReadEvaluator._read_from_pubsub.__module__,\n"
            "      te._ParDoEvaluator.__init__.__defaults__, te.DoFnRunner.__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "pipeline.io.direct_runner", "(False,)", "ReusingDoFnRunner"], \
        out.stderr[-2000:]


def test_next_timer_due_is_the_earliest_timer_of_any_key_of_any_step():
    # Real DirectRunner keyed states; the evaluation context is reduced to the one map the function reads
    # (a whole EvaluationContext needs a running pipeline).
    from types import SimpleNamespace

    from apache_beam.runners.direct.evaluation_context import DirectUnmergedState
    from apache_beam.transforms.timeutil import TimeDomain
    from apache_beam.utils.timestamp import Timestamp

    debounce, clear, watermark = DirectUnmergedState(), DirectUnmergedState(), DirectUnmergedState()
    debounce.set_timer("w", "debounce", TimeDomain.REAL_TIME, Timestamp(1_000.5))
    clear.set_timer("w", "clear", TimeDomain.REAL_TIME, Timestamp(22_600))
    watermark.set_timer("w", "trigger", TimeDomain.WATERMARK, Timestamp(1_200))
    context = SimpleNamespace(_transform_keyed_states={
        "BestBetsState": {b"2026-02-22": debounce}, "DateState": {b"2026-02-22": clear, b"2026-02-23":
                                                                    DirectUnmergedState()},
        "Sink": {b"k": watermark}, "Read": {}})
    assert direct_runner.next_timer_due(context) == 1_000.5
    debounce.clear_timer("w", "debounce", TimeDomain.REAL_TIME)
    assert direct_runner.next_timer_due(context) == 1_200
    assert direct_runner.next_timer_due(SimpleNamespace(_transform_keyed_states={"Read": {}})) is None


class _Clock:
    def __init__(self, now: float):
        self.now, self.reads = now, 0

    def time(self):
        self.reads += 1
        from apache_beam.utils.timestamp import Timestamp

        return Timestamp(self.now)


def test_the_timer_walk_fires_the_due_timers_and_skips_keys_without_timers():
    # Real DirectRunner keyed states under the patched walk; the watermark object is reduced to the fields
    # the walk reads (a whole _TransformWatermarks needs a running pipeline).
    import threading
    from types import SimpleNamespace

    from apache_beam.runners.direct import watermark_manager as wm
    from apache_beam.runners.direct.evaluation_context import DirectUnmergedState
    from apache_beam.transforms.timeutil import TimeDomain
    from apache_beam.utils.timestamp import Timestamp

    walk = direct_runner._timer_walk_skipping_keys_without_timers(
        wm._TransformWatermarks.extract_transform_timers)
    due, later, event, idle = (DirectUnmergedState() for _ in range(4))
    due.set_timer("w", "debounce", TimeDomain.REAL_TIME, Timestamp(99))
    later.set_timer("w", "debounce", TimeDomain.REAL_TIME, Timestamp(101))
    event.set_timer("w", "end", TimeDomain.WATERMARK, Timestamp(50))
    keyed = {b"due": due, b"later": later, b"event": event, **{f"idle{i}".encode(): DirectUnmergedState()
                                                              for i in range(100)}, b"idle": idle}
    clock = _Clock(100.0)
    marks = SimpleNamespace(_lock=threading.Lock(), _keyed_states=keyed, _clock=clock,
                            _input_watermark=Timestamp(60), _fired_timers=set())
    fired, has_realtime = walk(marks)
    assert sorted((f.encoded_key, f.name) for f in fired) == [(b"due", "debounce"), (b"event", "end")]
    assert has_realtime and marks._fired_timers == set(fired)
    assert clock.reads == 1  # once per walk, not once per key
    none = SimpleNamespace(_lock=threading.Lock(), _keyed_states={b"idle": idle}, _clock=clock,
                           _input_watermark=Timestamp(60), _fired_timers=set())
    assert walk(none) == ([], False)


def test_shared_state_reads_decode_a_stored_value_once_only_for_a_flagged_spec():
    from apache_beam.runners.direct import direct_userstate as du
    from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

    from pipeline.transforms.streaming import StateCoder

    read = direct_runner._shared_state_reads(du.ReadModifyWriteRuntimeState.read)
    flagged, plain = ReadModifyWriteStateSpec("a", StateCoder()), ReadModifyWriteStateSpec("b", StateCoder())
    setattr(flagged, direct_runner.SHARED_READS_ATTR, True)
    stored = [StateCoder().encode({"players": {"g": ["p"]}, "lined": []})]

    def cell(spec):
        return du.ReadModifyWriteRuntimeState(spec, spec.name, lambda: stored)

    first, second = read(cell(flagged)), read(cell(flagged))
    assert first is second and first == {"players": {"g": ["p"]}, "lined": []}
    assert read(cell(plain)) == first and read(cell(plain)) is not read(cell(plain))
    written = cell(flagged)
    written.write({"lined": ["x"]})
    assert read(written) == {"lined": ["x"]}  # a write in the bundle is read back, not the memo
    written.clear()
    assert read(written) is None


def test_shared_bag_reads_decode_a_stored_element_once_only_for_a_flagged_spec():
    from apache_beam.runners.direct import direct_userstate as du
    from apache_beam.transforms.userstate import BagStateSpec

    from pipeline.transforms.streaming import StateCoder

    read = direct_runner._shared_bag_reads(du.BagRuntimeState.read)
    flagged, plain = BagStateSpec("a", StateCoder()), BagStateSpec("b", StateCoder())
    setattr(flagged, direct_runner.SHARED_READS_ATTR, True)
    stored = [StateCoder().encode(("scored", {"pg": 1})), StateCoder().encode(("removed", {"pg": 2}))]

    def bag(spec):
        return du.BagRuntimeState(spec, spec.name, lambda: stored)

    first, second = list(read(bag(flagged))), list(read(bag(flagged)))
    assert first == [("scored", {"pg": 1}), ("removed", {"pg": 2})]
    assert all(a is b for a, b in zip(first, second, strict=True))
    assert list(read(bag(plain))) == first and list(read(bag(plain)))[0] is not list(read(bag(plain)))[0]
    added = bag(flagged)
    added.add(("scored", {"pg": 3}))
    assert list(read(added)) == [*first, ("scored", {"pg": 3})]  # an element added in the bundle is read
    added.clear()
    added.add(("tick", None))
    assert list(read(added)) == [("tick", None)]  # a clear drops the stored elements, not the new ones


def test_a_pulled_message_read_from_its_raw_protobuf_equals_beams_conversion():
    import datetime as dt

    from apache_beam.io.gcp.pubsub import PubsubMessage
    from google.pubsub_v1.types import PubsubMessage as PbMessage
    from google.pubsub_v1.types import ReceivedMessage

    published = dt.datetime(2026, 2, 22, 17, 0, 1, 250000, tzinfo=dt.UTC)
    received = ReceivedMessage(ack_id="a1", message=PbMessage(
        data=b'{"x": 1}', attributes={"kind": "odds", "event_ts": "2026-02-22T17:00:00Z"}, message_id="42",
        publish_time=published, ordering_key="k"))
    ours, beams = direct_runner._message_from_pb(PubsubMessage, received), PubsubMessage._from_message(
        received.message)
    assert ours == beams and ours.message_id == beams.message_id == "42"
    assert ours.publish_time == beams.publish_time == published and ours.ordering_key == "k"
    bare = direct_runner._message_from_pb(PubsubMessage, ReceivedMessage(message=PbMessage(data=b"x")))
    assert bare == PubsubMessage._from_message(PbMessage(data=b"x")) and bare.publish_time is None


EMPTY_OUTPUTS_SCRIPT = r"""
import json, os, sys, tempfile
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream
from pipeline.io import direct_runner, pubsub

LOG = sys.argv[1]  # DoFns are pickled by value: they report through a file


def note(line):
    with open(LOG, "a") as f:
        f.write(line + "\n")


class Split(beam.DoFn):
    def process(self, x):
        if x < 0:
            yield beam.pvalue.TaggedOutput("dead", x)
        else:
            yield x * 10


class CountBundles(beam.DoFn):
    def start_bundle(self):
        note("bundle")

    def process(self, x):
        yield x


def run():
    open(LOG, "w").close()
    stream = TestStream()
    for i in range(6):
        stream = stream.add_elements([i, i + 100, -1 if i == 4 else i + 200]).advance_processing_time(1)
    options = PipelineOptions(runner="DirectRunner")
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(options=options) as p:
        out = p | stream | beam.ParDo(Split()).with_outputs("dead", main="main")
        dead = out.dead | "CountDead" >> beam.ParDo(CountBundles())
        (out.main, dead) | beam.Flatten() | beam.Map(lambda x: note(f"got {x}"))
    lines = open(LOG).read().split()
    return sorted(int(v) for k, v in zip(lines, lines[1:]) if k == "got"), lines.count("bundle")


before = run()
direct_runner.speed_up_direct_runner()
after = run()
print(json.dumps({"before": before, "after": after}))
"""


def test_empty_output_bundles_are_not_run_by_consumers_and_every_element_still_arrives(tmp_path):
    # The real DirectRunner on a TestStream, in a subprocess (the patches are process-wide): the ``dead``
    # output is empty in 5 of 6 bundles; its consumer ran a bundle for each before the patch.
    import json

    out = subprocess.run([sys.executable, "-c", EMPTY_OUTPUTS_SCRIPT, str(tmp_path / "log")], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    (got_before, dead_before), (got_after, dead_after) = result["before"], result["after"]
    assert got_after == got_before and -1 in got_after and len(got_after) == 18
    assert dead_before >= 5 and dead_after == 1


def _write_through_cells():
    from apache_beam.runners.direct import direct_userstate as du
    from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

    from pipeline.transforms.streaming import StateCoder

    read = direct_runner._shared_state_reads(du.ReadModifyWriteRuntimeState.read)
    write = direct_runner._write_through(du.ReadModifyWriteRuntimeState.write)
    through, shared = ReadModifyWriteStateSpec("t", StateCoder()), ReadModifyWriteStateSpec("s", StateCoder())
    setattr(through, direct_runner.SHARED_READS_ATTR, 2)
    setattr(through, direct_runner.WRITE_THROUGH_ATTR, True)
    setattr(shared, direct_runner.SHARED_READS_ATTR, True)
    store = {"t": [], "s": []}

    def cell(spec):  # a bundle's cell over what the previous bundle committed
        return du.ReadModifyWriteRuntimeState(spec, spec.name, lambda: list(store[spec.name]))

    def commit(c, spec):
        store[spec.name] = list(c._value)

    return read, write, through, shared, store, cell, commit


def _first_write_and_reads(value):
    """``value`` written to a write-through spec and a shared-read spec, each read back in a new bundle."""
    read, write, through, shared, store, cell, commit = _write_through_cells()
    for spec in (through, shared):
        c = cell(spec)
        write(c, value)
        commit(c, spec)
    return (read, write, through, store, cell, commit), read(cell(through)), read(cell(shared))


def test_a_write_through_spec_encoding_every_write_hands_the_next_read_the_value_written(monkeypatch):
    from pipeline.transforms.streaming import StateCoder

    monkeypatch.setenv(direct_runner.ENCODE_EVERY_WRITE_ENV, "1")  # as Dataflow: every write encoded
    values = [{"seq": n, "rows": (n, "x")} for n in range(3)]
    (read, write, through, store, cell, commit), got_through, got_shared = _first_write_and_reads(values[0])
    assert got_through is values[0]  # the written object, not a decode of its bytes
    assert got_shared == values[0] and got_shared is not values[0]  # decoded (once) without write-through
    assert store["t"] == [StateCoder().encode(values[0])]  # the cell holds the encoded bytes
    for v in values[1:]:
        c = cell(through)
        write(c, v)
        commit(c, through)
    assert read(cell(through)) is values[2]
    assert len(direct_runner._shared_memo(through)) == 2  # bounded by the spec's own count


def test_a_write_through_spec_stores_the_value_itself_and_checks_the_coder_on_its_first_value(monkeypatch):
    monkeypatch.delenv(direct_runner.ENCODE_EVERY_WRITE_ENV, raising=False)  # the local job's mode
    values = [{"seq": n, "rows": (n, "x")} for n in range(3)]
    (read, write, through, store, cell, commit), got_through, got_shared = _first_write_and_reads(values[0])
    assert got_through is values[0]
    assert got_shared == values[0] and got_shared is not values[0]  # other specs: encoded, decoded
    assert isinstance(store["s"][0], bytes) and not isinstance(store["t"][0], bytes)
    assert direct_runner._shared_memo(through) == {}  # nothing to decode, nothing remembered
    for v in values[1:]:
        c = cell(through)
        write(c, v)
        commit(c, through)
        assert read(cell(through)) is v
    c = cell(through)
    c.clear()
    commit(c, through)
    assert read(cell(through)) is None
    # The coder is exercised on the first value a spec takes: a value it cannot encode fails the write.
    _read, write2, fresh, _shared, _store, cell2, _commit = _write_through_cells()
    with pytest.raises(Exception, match="pickle|lambda"):
        write2(cell2(fresh), {"seq": 1, "bad": lambda: None})


def test_the_player_game_cells_are_shared_only_where_the_dofn_copies_what_it_reads():
    from pipeline.transforms import streaming

    for spec in (streaming.PG_INFO, streaming.PG_BOOK):
        assert getattr(spec, direct_runner.WRITE_THROUGH_ATTR)
        assert getattr(spec, direct_runner.SHARED_READS_ATTR)
    assert not getattr(streaming.PG_ODDS, direct_runner.SHARED_READS_ATTR, False)  # migrated, then cleared


def _received(ack_id: str, event_ts: str | None = None):
    import datetime as dt

    from google.pubsub_v1.types import PubsubMessage as PbMessage
    from google.pubsub_v1.types import ReceivedMessage

    published = dt.datetime(2026, 2, 22, 17, tzinfo=dt.UTC)
    attrs = {"event_ts": event_ts} if event_ts else {}
    return ReceivedMessage(ack_id=ack_id, message=PbMessage(data=ack_id.encode(), attributes=attrs,
                                                            publish_time=published))


def test_a_read_waits_for_a_message_only_when_idle_and_never_past_the_next_timer(monkeypatch):
    # The prefetcher is a stand-in that records how long each read is willing to wait (what is decided
    # here); real pulls run against the emulator in test_stream_emulator.
    import time
    from types import SimpleNamespace

    direct_runner.speed_up_direct_runner()
    monkeypatch.setattr(direct_runner, "_GC", SimpleNamespace(maybe_freeze=lambda now: None))
    waits, batches, acked = [], [[(1, "m1", "a1")]], []

    class Source:
        def buffered(self):
            return len(batches[0]) if batches else 0

        def take(self, n, wait_s):
            waits.append(wait_s)
            return batches.pop(0) if batches else []

    class Client:
        def acknowledge(self, subscription, ack_ids):
            acked.extend(ack_ids)

    timers: dict = {}
    monkeypatch.setattr(direct_runner, "prefetcher", lambda *a, **k: Source())
    monkeypatch.setattr(direct_runner, "next_timer_due", lambda ctx: timers.get("due"))
    reader = SimpleNamespace(_get_subscriber_client=lambda applied: Client(), _applied_ptransform=None,
                             _sub_name="projects/p/subscriptions/s", _evaluation_context=None)
    read = te._PubSubReadEvaluator._read_from_pubsub
    monkeypatch.setitem(direct_runner._READ_CLOCK, "last_message", float("-inf"))
    assert read(reader, None) == [(1, "m1")]
    direct_runner._ACKS.flush()
    assert acked == ["a1"] and waits == [direct_runner.BUSY_WAIT_S]  # a message was buffered: no wait
    assert read(reader, None) == [] and waits[-1] == direct_runner.BUSY_WAIT_S  # busy: a short wait
    direct_runner._READ_CLOCK["last_message"] -= direct_runner.BUSY_WINDOW_S
    assert read(reader, None) == [] and waits[-1] == direct_runner.IDLE_PULL_TIMEOUT_S  # idle: waits
    timers["due"] = time.time() + 0.3
    assert read(reader, None) == [] and 0.2 < waits[-1] <= 0.3  # ... but not past a timer of the job


def test_the_prefetcher_pulls_ahead_up_to_its_limit_and_acknowledges_nothing_itself():
    import threading
    import time

    pulls, lock = [], threading.Lock()

    class Client:
        def pull(self, subscription, max_messages, timeout):
            with lock:
                k = len(pulls)
                pulls.append((threading.current_thread().name, max_messages, timeout))
            from types import SimpleNamespace
            return SimpleNamespace(received_messages=[
                _received(f"a{10 * k + i}", "2026-02-22T17:00:00.000Z" if i else "not a time")
                for i in range(10)])

        def acknowledge(self, subscription, ack_ids):
            raise AssertionError("the prefetcher acknowledges nothing: the read does, for what it took")

    source = direct_runner._Prefetcher(Client(), "projects/p/subscriptions/s", "event_ts", max_messages=10,
                                       pull_timeout_s=2.0, limit=25)
    deadline = time.monotonic() + 30
    while source.buffered() < 25 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert source.buffered() == 30 and len(pulls) == 3  # stops once the limit is reached
    assert {p[0] for p in pulls} == {"props-pubsub-pull projects/p/subscriptions/s"}
    assert pulls[0][1:] == (10, 2.0)
    taken = source.take(12, 0.0)
    assert [a for _, _, a in taken] == [f"a{i}" for i in range(12)]  # in pull order
    (ts0, bad, _), (ts1, good, _) = taken[:2]
    assert bad.attributes[pubsub.BAD_TIMESTAMP_ATTR] == "not a time"  # kept at its publish time
    assert pubsub.BAD_TIMESTAMP_ATTR not in good.attributes
    assert ts0 == ts1  # both 17:00Z: the event_ts of one, the publish time of the other
    while len(pulls) < 4 and time.monotonic() < deadline:  # room again: it pulls on, once (18 -> 28)
        time.sleep(0.01)
    time.sleep(0.2)
    assert len(pulls) == 4 and source.buffered() == 28
    source.close()


def test_a_pull_that_keeps_failing_fails_the_read_with_its_error(monkeypatch):
    class Client:
        calls = 0

        def pull(self, subscription, max_messages, timeout):
            Client.calls += 1
            raise RuntimeError("emulator gone")

    monkeypatch.setattr(direct_runner, "PULL_RETRIES", 0)
    source = direct_runner._Prefetcher(Client(), "projects/p/subscriptions/gone", None, max_messages=10,
                                       pull_timeout_s=2.0)
    try:
        with pytest.raises(RuntimeError, match="emulator gone"):
            source.take(10, 30.0)  # woken by the failure, not by the wait's end
        assert source.failures >= 1
    finally:
        source.close()


def test_the_gc_freeze_runs_at_the_first_read_and_once_more_later():
    import gc

    freeze = direct_runner._GcFreeze()
    try:
        freeze.maybe_freeze(100.0)
        first = gc.get_freeze_count()
        assert first > 0 and freeze.due == [100.0 + direct_runner.GC_FREEZE_AFTER_S]
        gc.unfreeze()
        freeze.maybe_freeze(101.0)
        assert gc.get_freeze_count() == 0  # not due yet
        freeze.maybe_freeze(100.0 + direct_runner.GC_FREEZE_AFTER_S)
        assert gc.get_freeze_count() > 0 and freeze.due == []
        gc.unfreeze()
        freeze.maybe_freeze(1e9)
        assert gc.get_freeze_count() == 0  # two freezes per process, no more
    finally:
        gc.unfreeze()


def test_pulled_messages_are_acknowledged_off_the_worker_thread_and_a_failure_is_counted():
    # A stand-in client records which thread acknowledges (acknowledgement against the real emulator runs
    # in test_stream_emulator, whose restart test counts redelivered work).
    import threading

    acks = direct_runner._Acknowledger()

    class Client:
        def __init__(self, fail=False):
            self.calls, self.fail = [], fail

        def acknowledge(self, subscription, ack_ids):
            self.calls.append((threading.current_thread().name, subscription, list(ack_ids)))
            if self.fail:
                raise RuntimeError("emulator gone")

    ok, bad = Client(), Client(fail=True)
    acks.submit(ok, "projects/p/subscriptions/s", ["a", "b"])
    acks.submit(bad, "projects/p/subscriptions/s", ["c"])
    acks.submit(ok, "projects/p/subscriptions/s", ["d"])
    acks.flush()
    assert ok.calls == [("props-pubsub-ack", "projects/p/subscriptions/s", ["a", "b"]),
                        ("props-pubsub-ack", "projects/p/subscriptions/s", ["d"])]
    assert len(bad.calls) == 1 and acks.failures == 1  # counted, and the thread goes on


def test_the_change_publisher_sends_a_batch_without_waiting_for_more_messages(monkeypatch):
    # Only the client's settings are looked at (no publish; an emulator address only so that the client
    # needs no credentials): the emulator tests publish through it.
    from apache_beam.io.gcp import pubsub as beam_pubsub

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "localhost:9")
    direct_runner.speed_up_direct_runner()
    fn = beam_pubsub._PubSubWriteDoFn(beam_pubsub.WriteToPubSub("projects/props-test/topics/changes"))
    fn.setup()
    assert fn._pub_client.batch_settings.max_latency == 0.0
    assert fn._pub_client.batch_settings.max_messages == type(fn._pub_client.batch_settings)().max_messages


def test_every_command_memoises_dofn_inspection_and_the_stream_patches_still_apply_after():
    """prepare_local_environment (every command, batch included) memoises Beam's DoFn inspection; the
    streaming runner's patches, applied later in the same process, are not skipped because of it. In a
    fresh interpreter: this module applies the stream patches at import."""
    code = (
        "from apache_beam.runners.direct import transform_evaluator as te\n"
        "from apache_beam.transforms import core, userstate\n"
        "from pipeline.commands import common\n"
        "from pipeline.io import direct_runner\n"
        "common.prepare_local_environment()\n"
        "print(getattr(userstate.get_dofn_specs, '_props_memoised', False),"
        " getattr(core.get_function_arguments, '_props_memoised', False),"
        " getattr(te.DoFnRunner, '_props_reusing', False))\n"
        "direct_runner.speed_up_direct_runner()\n"
        "print(getattr(te.DoFnRunner, '_props_reusing', False),"
        " te.get_dofn_specs is userstate.get_dofn_specs)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True).stdout.split("\n")
    assert out[:2] == ["True True False", "True True"]


def test_the_keyed_state_copy_equals_beams_and_shares_nothing_mutable():
    from apache_beam.transforms import trigger
    from apache_beam.transforms.window import GlobalWindow, IntervalWindow
    from apache_beam.utils.timestamp import Timestamp

    original = trigger.InMemoryUnmergedState.copy
    fast = direct_runner._copy_keyed_state(original)
    bag, rmw = trigger._ListStateTag("bag"), trigger._ReadModifyWriteStateTag("rmw")
    for populated in (False, True):
        state = trigger.InMemoryUnmergedState()
        if populated:
            g, w = GlobalWindow(), IntervalWindow(0, 10)
            state.set_timer(g, "user/debounce", "REAL_TIME", Timestamp(5))
            state.set_timer(w, "user/timeout", "EVENT_TIME", Timestamp(7), dynamic_timer_tag="x")
            state.add_state(g, bag, b"a")
            state.add_state(g, bag, b"b")
            state.add_state(w, rmw, [b"cell"])
            state.set_global_state(rmw, {"nested": [1]})
        ours = fast(state)
        if not getattr(original, "_props_patched", False):  # Beam's own copy, unless patched in-process
            beams = original(state)
            assert (ours.timers, ours.state, ours.global_state) == (beams.timers, beams.state,
                                                                     beams.global_state)
        assert type(ours) is trigger.InMemoryUnmergedState
        assert ours.timers == state.timers and ours.state == state.state
        assert ours.global_state == state.global_state
        if populated:  # changing the copy leaves the original as it was
            ours.clear_timer(GlobalWindow(), "user/debounce", "REAL_TIME")
            ours.add_state(GlobalWindow(), bag, b"c")
            ours.global_state["rmw"]["nested"].append(2)
            assert state.timers[GlobalWindow()] == {("user/debounce", "REAL_TIME", ""): Timestamp(5)}
            assert state.state[GlobalWindow()]["bag"] == [b"a", b"b"]
            assert state.global_state == {"rmw": {"nested": [1]}}
