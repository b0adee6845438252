"""``props bridge``: feed the streaming job from the old scrapers' BigQuery tables (issue #11 item 4).

    props bridge --source bigquery-legacy://nba-props-platform \\
        --topic projects/MYPROJ/topics/props-events --warehouse bigquery://MYPROJ.props --once
    props bridge --source bigquery-legacy://nba-props-platform --topic projects/MYPROJ/topics/props-events \\
        --warehouse bigquery://MYPROJ.props --every 60          # a loop, one pass a minute
    props bridge --source bigquery-legacy://old-props --bigquery-endpoint http://127.0.0.1:9050 \\
        --pubsub-emulator 127.0.0.1:8085 --pubsub-project props-local --once   # local emulators

Each pass (``pipeline/io/bridge.py``) reads the rows that arrived in the old odds (Odds API, BettingPros
for players the Odds API lacks), schedule (+ postponements) and injury tables since each table's watermark
(kept in the warehouse table ``bridge_watermarks``), maps them with ``pipeline/io/legacy.py`` and
publishes them to the events topic in event-time order, in the message format of ``props replay``
(attributes ``kind``, ``event_ts`` = the row's event time, ``original_event_ts``, ``origin`` =
``bridge:TABLE``). Rows that do not map are dead letters (warehouse ``dead_letters``, source ``bridge``).
Then the watermarks move. A pass prints its progress and one summary line (rows read / published /
ignored / dead letters per table, watermark).

``--once`` (the default) runs one pass and exits 0, or 1 when the pass failed (nothing published is lost:
the watermark did not move, the next pass publishes again). ``--every N`` runs a pass every N seconds
until stopped; a failed pass is reported and retried at the next tick.
"""

from __future__ import annotations

import datetime as dt
import time

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.commands import common
from pipeline.commands.common import LaunchError, eprint
from pipeline.options import DataOptions, OptionsError, StreamOptions, _add, parse_date


class BridgeOptions(PipelineOptions):
    """The bridge from the old scrapers' tables to the events topic: ``props bridge``."""

    @classmethod
    def _add_argparse_args(cls, parser):
        _add(parser, "source", default=None,
             help="The old system's BigQuery project: bigquery-legacy://PROJECT (e.g. "
             "bigquery-legacy://nba-props-platform). Required.")
        _add(parser, "topic", default=None,
             help="The events topic: projects/PROJECT/topics/TOPIC, or a topic id in --pubsub-project. "
             "Default: --events-topic. A full path means the real Pub/Sub of that project unless "
             "--pubsub-emulator HOST is given.")
        _add(parser, "once", action="store_true", default=False,
             help="Run one pass and exit (the default; for a scheduler running it every minute).")
        _add(parser, "every", type=float, default=None,
             help="Run a pass every this many seconds until stopped (a loop instead of a scheduler).")
        _add(parser, "lookback_days", type=int, default=1,
             help="Game dates read before the watermark's date (rows that arrive late for an earlier "
             "date, e.g. a final score after midnight UTC). Default 1.")
        _add(parser, "days_ahead", type=int, default=1,
             help="Game dates read after today (odds of tomorrow's games). Default 1.")
        _add(parser, "today", default=None,
             help="The US-Eastern date the read window is built around (YYYY-MM-DD). Default: the current "
             "Eastern date. For a catch-up or a test.")


def _resolve_topic(options) -> tuple[str | None, str, str]:
    """(emulator host or None, Pub/Sub project, topic id) of --topic / --events-topic."""
    from pipeline.options import pubsub_target

    bridge, stream = options.view_as(BridgeOptions), options.view_as(StreamOptions)
    topic = bridge.topic or stream.events_topic
    if topic.startswith("projects/"):
        parts = topic.split("/")
        if len(parts) != 4 or parts[2] != "topics" or not parts[1] or not parts[3]:
            raise OptionsError(f"--topic: expected projects/PROJECT/topics/TOPIC, got {topic!r}")
        if stream.pubsub_project and stream.pubsub_project != parts[1]:
            raise OptionsError(f"--topic {topic} is in project {parts[1]}, --pubsub-project says "
                               f"{stream.pubsub_project}")
        stream.pubsub_project, topic = parts[1], parts[3]
    host, project = pubsub_target(options)
    if not project:
        raise OptionsError("Pub/Sub project unknown: pass --topic projects/P/topics/T or --pubsub-project")
    return host, project, topic


class Bridge:
    """Everything a pass needs, resolved once at launch."""

    def __init__(self, options):
        from pipeline.io import legacy, pubsub
        from pipeline.io.bridge import bigquery_runner
        from pipeline.io.warehouse import open_warehouse

        bridge = options.view_as(BridgeOptions)
        if not bridge.source:
            raise OptionsError("--source is required: bigquery-legacy://PROJECT (the old system's project)")
        try:
            self.project = legacy.parse_legacy_uri(bridge.source)
        except ValueError as exc:
            raise OptionsError(f"--source: {exc}") from None
        if bridge.lookback_days < 0 or bridge.days_ahead < 0:
            raise OptionsError("--lookback-days and --days-ahead must be >= 0")
        if bridge.every is not None and bridge.every <= 0:
            raise OptionsError("--every: expected a number of seconds > 0, e.g. --every 60")
        if bridge.every is not None and bridge.once:
            raise OptionsError("--once and --every exclude each other")
        self.source, self.options = bridge.source, bridge
        self.today = parse_date(bridge.today, "today")
        host, self.pubsub_project, self.topic = _resolve_topic(options)
        if host is None or not options.view_as(DataOptions).bigquery_endpoint:
            from pipeline.io import cloud

            missing = cloud.credentials_problem()  # real BigQuery or Pub/Sub: fail in seconds, not retries
            if missing:
                raise LaunchError(missing)
        if host:
            pubsub.use_emulator(host)
            if not pubsub.reachable(host):
                raise LaunchError(f"no Pub/Sub emulator at {host}: start one with 'gcloud beta emulators "
                                  f"pubsub start --host-port={host}' (or 'props stream', which starts it)")
            pubsub.ensure_topics(self.pubsub_project, [self.topic], {})
        self.policy = common.load_policy(options)
        self.warehouse = open_warehouse(common.warehouse_uri(options))
        self.run = bigquery_runner(self.project)
        self.publisher = pubsub.Publisher(self.pubsub_project, self.topic)

    def once(self) -> int:
        """One pass: read, publish, dead letters, watermarks. Returns the events published."""
        from pipeline.domain.calendar import today_eastern
        from pipeline.io import bridge as br
        from pipeline.io import pubsub

        watch = common.Stopwatch()
        run_id = common.new_run_id("bridge")
        before = br.read_watermarks(self.warehouse, self.source)
        result = br.collect(
            self.source, self.run, before, self.today or today_eastern(),
            lookback_days=self.options.lookback_days, days_ahead=self.options.days_ahead,
            window_hours=self.policy.event_time_window_hours,
            progress=lambda m: eprint(f"[bridge {watch.seconds:5.1f}s] {m}"))
        for i, ev in enumerate(result.events, 1):
            data, attrs = pubsub.message_for(ev.kind, ev.row,
                                             extra_attributes={"origin": f"bridge:{ev.table}"})
            self.publisher.publish(data, attrs)
            if i % 1000 == 0:
                eprint(f"[bridge {watch.seconds:5.1f}s] {i}/{len(result.events)} published")
        self.publisher.flush()
        dead = br.new_dead_letters(self.warehouse, result.dead_letters)
        if dead:
            self.warehouse.append_dead_letters([d._replace(run_id=run_id) for d in dead])
        marks = br.watermark_rows(result, before, self.source, run_id, dt.datetime.now(dt.UTC))
        if marks:
            self.warehouse.append(br.WATERMARK_TABLE, marks)
        print(br.summary(result, len(result.events), watch.seconds), flush=True)
        return len(result.events)


def main(argv: list[str]) -> int:
    common.prepare_local_environment()
    if "-h" in argv or "--help" in argv:
        common.print_help("bridge", (BridgeOptions, StreamOptions, DataOptions))
        return 0
    try:
        options = common.parse_options(argv)
        bridge = Bridge(options)
    except (OptionsError, LaunchError, ValueError) as exc:
        eprint(f"props bridge: {exc}")
        return 2
    every = bridge.options.every
    if every is None:
        try:
            bridge.once()
        except Exception as exc:  # noqa: BLE001 - reported with the consequence; the exit code says it
            eprint(f"props bridge: pass failed, watermark not moved (the next pass publishes again): "
                   f"{type(exc).__name__}: {exc}")
            return 1
        return 0
    eprint(f"props bridge: a pass every {every:g} s from {bridge.source} to "
           f"projects/{bridge.pubsub_project}/topics/{bridge.topic} (Ctrl-C to stop)")
    try:
        while True:
            started = time.monotonic()
            try:
                bridge.once()
            except Exception as exc:  # noqa: BLE001 - a running loop reports and retries, never dies
                eprint(f"props bridge: pass failed, watermark not moved (retrying in {every:g} s): "
                       f"{type(exc).__name__}: {exc}")
            time.sleep(max(0.0, every - (time.monotonic() - started)))
    except KeyboardInterrupt:
        eprint("props bridge: stopped")
    return 0
