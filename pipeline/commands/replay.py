"""``props replay --date D | --start D1 --end D2 [--speed X] [--until TS] [--since TS]``: publish simulated
days' events into the running stream.

Reads the dates' odds, schedule and injury events from --inputs (default: the cached simulated season),
sorts them by event time and publishes them to the events topic with attributes ``kind``, ``event_ts``
(shifted so the first event lands at the moment the replay starts: the local Pub/Sub source's watermark is
wall-clock time, beam-notes) and ``original_event_ts``. Payloads keep their original times, so the
stream's picks equal ``props run --as-of <last event>``. ``--speed X`` publishes X event-time seconds per
wall second (0: as fast as possible). Prints progress and a summary.

    props replay --date 2026-02-22 --speed 600          # ten minutes of the day per second
    props replay --date 2026-02-22 --until 2026-02-22T22:00:00Z
    props replay --start 2026-02-20 --end 2026-02-22 --speed 0   # three days, in event-time order

Several days are one event-time ordered sequence (the schedule, injury and odds events of every date),
so one running ``props stream`` sees the days in the order they happened and initialises each date on
its first event.
"""

from __future__ import annotations

import datetime as dt
import time

from pipeline.commands import common
from pipeline.commands.common import LaunchError, eprint
from pipeline.options import (
    DataOptions,
    OptionsError,
    RangeOptions,
    SlateOptions,
    StreamOptions,
    parse_date,
    parse_timestamp,
    pubsub_target,
)


def replay_dates(options, inputs: str) -> list[dt.date]:
    """--start/--end (inclusive), else --date / --game-date, else the simulated season's busiest date."""
    rng = options.view_as(RangeOptions)
    start, end = parse_date(rng.start, "start"), parse_date(rng.end, "end")
    if start is not None or end is not None:
        if start is None or end is None or end < start:
            raise OptionsError("--start and --end go together, with --end on or after --start")
        return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    game_date = (parse_date(rng.date, "date")
                 or parse_date(options.view_as(SlateOptions).game_date, "game_date"))
    if game_date is None:
        game_date = common.busiest_date(inputs, common.trained_until(common.load_registry(options)))
    return [game_date]


def _label(dates: list[dt.date]) -> str:
    return str(dates[0]) if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"


def main(argv: list[str]) -> int:
    common.prepare_local_environment()
    if "-h" in argv or "--help" in argv:
        common.print_help("replay", (StreamOptions, RangeOptions, DataOptions))
        return 0
    from pipeline.commands.stream import day_events
    from pipeline.io import pubsub
    from pipeline.io.parse import event_time

    try:
        options = common.parse_options(argv)
        stream = options.view_as(StreamOptions)
        inputs = common.default_inputs(options)
        dates = replay_dates(options, inputs)
        since = parse_timestamp(stream.since, "since")
        until = parse_timestamp(stream.until, "until")
        events, dead = day_events(inputs, dates, since=since, until=until)
        if not events:
            raise LaunchError(f"no events for {_label(dates)} in {inputs} in the requested time range")
        host, stream.pubsub_project = pubsub_target(options)  # the one emulator rule (options.py)
        if host:
            pubsub.use_emulator(host)
        if host and not pubsub.reachable(host):
            raise LaunchError(f"no Pub/Sub emulator at {host}: start 'props stream' (it starts one) or "
                              f"'gcloud beta emulators pubsub start --host-port={host}'")
        pubsub.ensure_topics(stream.pubsub_project, [stream.events_topic], {})
    except (OptionsError, LaunchError) as exc:
        eprint(f"props replay: {exc}")
        return 2
    speed = float(stream.speed or 0.0)
    publisher = pubsub.Publisher(stream.pubsub_project, stream.events_topic)
    t0 = event_time(events[0].kind, events[0].row)
    wall0 = dt.datetime.now(dt.UTC)
    mono0 = time.monotonic()
    counts: dict[str, int] = {}
    eprint(f"props replay {_label(dates)}: {len(events)} events ({t0:%Y-%m-%dT%H:%M:%SZ} .. "
           f"{event_time(events[-1].kind, events[-1].row):%Y-%m-%dT%H:%M:%SZ}), speed "
           f"{speed or 'max'}, to {pubsub.topic_path(stream.pubsub_project, stream.events_topic)}"
           + (f"; {len(dead)} unreadable records skipped (see dead letters of props run)" if dead else ""))
    for i, ev in enumerate(events, 1):
        t = event_time(ev.kind, ev.row)
        offset = (t - t0).total_seconds()
        if speed > 0:
            wait = offset / speed - (time.monotonic() - mono0)
            if wait > 0:
                publisher.flush()
                time.sleep(wait)
        shifted = wall0 + dt.timedelta(seconds=offset / speed if speed > 0 else 0.0)
        data, attrs = pubsub.message_for(ev.kind, ev.row, event_ts=shifted)
        publisher.publish(data, attrs)
        counts[ev.kind] = counts.get(ev.kind, 0) + 1
        if i % 1000 == 0:
            eprint(f"  {i}/{len(events)} published (event time {t:%H:%M:%SZ})")
    publisher.flush()
    secs = time.monotonic() - mono0
    last = event_time(events[-1].kind, events[-1].row)
    print(f"replay {_label(dates)}: published {len(events)} events "
          f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}) in {secs:.1f} s; "
          f"last event time {last.isoformat().replace('+00:00', 'Z')}")
    return 0
