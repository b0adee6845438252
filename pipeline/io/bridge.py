"""The bridge from the old scrapers' BigQuery tables to the streaming job's events topic (issue #11 item 4).

The old system's scrapers write snapshots to BigQuery, not to Pub/Sub. ``props bridge``
(``pipeline/commands/bridge.py``) runs :func:`collect` once per pass: it reads the rows that arrived in the
old odds (Odds API, BettingPros as the fallback), schedule (+ postponements) and injury tables since the
table's watermark, maps them with the one mapping of ``pipeline/io/legacy.py`` (``odds_api_record``,
``bettingpros_records``, ``latest_schedule_rows`` + ``schedule_records``, ``injury_record``) and types them
with ``pipeline.io.parse.parse_record``; the command then publishes them as event messages
(``pipeline.io.pubsub.message_for``, the format ``props replay`` uses) in event-time order, writes the dead
letters and only then appends the new watermarks (:func:`watermark_rows`) to the warehouse table
``bridge_watermarks``::

    marks = read_watermarks(warehouse, source)
    result = collect(source, bigquery_runner(project), marks, today, lookback_days=1, days_ahead=1)
    ... publish result.events, append result.dead_letters ...
    warehouse.append("bridge_watermarks", watermark_rows(result, marks, source, run_id, now))

**Watermark.** Per old table: the largest arrival time read (``processed_at``, the column every one of the
four tables has in the old DDL, ``schemas/bigquery/raw/*.sql``: the time the processor wrote the row;
legacy.md does not list it; the postponements table has no DDL, its arrival is ``detected_at``), a
tie-break among the rows of that arrival time (a text of the columns that identify a row), and
``dates_to``, the last game date read. A pass reads, with one query per table:

* the partitions of game dates ``lo .. hi``: ``lo`` = the watermark's date (today on the first pass) minus
  ``lookback_days``, ``hi`` = today + ``days_ahead`` (injuries: also ``report_date`` from
  ``lo - legacy.INJURY_REPORT_LOOKBACK_DAYS``, their partition column). The bounds are partition filters,
  so a pass reads a few partitions, never the season (the schedule and BettingPros tables require one);
* of those, the rows that arrived after the watermark (``(arrival, key) > (watermark_ts, watermark_key)``),
  plus every row of a date after ``dates_to``: a date that enters the window (odds of tomorrow's games
  scraped days ahead, the season schedule written in advance) is read in full once.

**Idempotency.** The watermark moves only after the events were published and the dead letters written.
A crash in between republishes the same rows next pass: the stream's per-player-game state keeps a change
signature (decision, line book, diagnostics, feature row, context, tip-off, model set), so an identical
snapshot, schedule event or injury report changes nothing: no new version, no pick change, no
picks-changes message (only the counter ``stream_events_unchanged`` moves). A dead letter already stored
for the same row is not written again. Two passes running at once both publish (harmless, as above); the
watermark is the largest of the rows either appended.

**Not covered.** A row committed after a pass with an arrival time at or below that pass's watermark (a
load that took longer than the next scrape's) and a row of a date older than ``lo`` are not read; raise
``--lookback-days`` for late corrections. A postponement's later resolution (``status = 'resolved'``)
does not move ``detected_at`` and is not re-read. BettingPros rows are published for players without a
pre-game Odds API row on the date at the time of the pass (batch decides on the whole date).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from pipeline import schemas
from pipeline.io import legacy
from pipeline.io.legacy import as_date
from pipeline.io.parse import ParseError, dead_letter, event_time, parse_record

BRIDGE_SOURCE = "bridge"  # dead_letters.source of the bridge's rows
MAP_STEP = "legacy_map"
WATERMARK_TABLE = "bridge_watermarks"
# Kinds of one event time are published schedule first, then injuries, then odds (as props replay does).
KIND_ORDER: dict[str, int] = {"schedule": 0, "injuries": 1, "odds": 2}
# The arrival time of a row in the old DDL (schemas/bigquery/raw/*.sql): when the processor wrote it.
ARRIVAL_COLUMN = "processed_at"
# What mapping or typing one old row may raise: the row becomes a dead letter, the pass goes on.
MAPPING_ERRORS = (ParseError, ValueError, TypeError, KeyError, ArithmeticError)

# A query runner: (GoogleSQL with @named parameters, [(name, BigQuery type, value)]) -> rows as dicts.
QueryRunner = Callable[[str, list[tuple[str, str, Any]]], list[dict[str, Any]]]


def _text(column: str) -> str:
    return f"COALESCE(CAST({column} AS STRING), '')"


def _key(*columns: str) -> str:
    return "CONCAT(" + ", '|', ".join(_text(c) for c in columns) + ")"


class BridgeTable(NamedTuple):
    """How the bridge reads one old table (a key of ``legacy.LEGACY_TABLES``)."""

    key: str
    kind: str  # our event kind its rows become
    date_column: str  # the game date the window bounds
    arrival: str  # SQL: the row's arrival time
    tiebreak: str  # SQL: a STRING ordering the rows of one arrival time
    always: str = ""  # SQL condition every read applies


BRIDGE_TABLES: dict[str, BridgeTable] = {t.key: t for t in (
    BridgeTable("odds", "odds", "game_date", ARRIVAL_COLUMN,
                _key("player_lookup", "bookmaker", "snapshot_timestamp", "points_line", "game_id")),
    BridgeTable("odds_fallback", "odds", "game_date", ARRIVAL_COLUMN,
                _key("player_lookup", "bookmaker", "created_at", "points_line", "bet_side"),
                always="market_type = 'points'"),
    BridgeTable("schedule", "schedule", "game_date", ARRIVAL_COLUMN,
                _key("game_id", "game_date", "data_source", "game_status")),
    BridgeTable("postponements", "schedule", "original_date", "detected_at",
                _key("game_id", "original_date", "status")),
    BridgeTable("injuries", "injuries", "game_date", ARRIVAL_COLUMN,
                _key("player_lookup", "game_date", "report_date", "report_hour", "injury_status")),
)}


class Watermark(NamedTuple):
    """How far one old table was published: ``(ts, key)`` of the last row, ``dates_to`` the last date read."""

    ts: dt.datetime | None = None
    key: str | None = None
    dates_to: dt.date | None = None


class ReadWindow(NamedTuple):
    """One table's read in one pass: game dates ``lo .. hi``; dates after ``full_after`` in full; the
    rest only after the watermark ``(wm_ts, wm_key)`` (None: no row read yet)."""

    lo: dt.date
    hi: dt.date
    full_after: dt.date
    wm_ts: dt.datetime | None
    wm_key: str | None


def read_window(mark: Watermark | None, today: dt.date, *, lookback_days: int, days_ahead: int) -> ReadWindow:
    """The window of one table's next read (see the module docstring)."""
    if lookback_days < 0 or days_ahead < 0:
        raise ValueError("lookback_days and days_ahead must be >= 0")
    mark = mark or Watermark()
    hi = today + dt.timedelta(days=days_ahead)
    base = min(mark.ts.astimezone(dt.UTC).date(), today) if mark.ts is not None else today
    lo = base - dt.timedelta(days=lookback_days)
    full_after = lo - dt.timedelta(days=1)
    if mark.dates_to is not None:
        full_after = max(full_after, mark.dates_to)
    return ReadWindow(lo=lo, hi=hi, full_after=full_after, wm_ts=mark.ts, wm_key=mark.key)


Params = list[tuple[str, str, Any]]


def window_sql(project: str, table: BridgeTable, window: ReadWindow) -> tuple[str, Params]:
    """(SQL, parameters) of one table's read in one pass: partition-bounded, watermark-filtered. Each row
    carries ``_bridge_arrival`` and ``_bridge_key`` (its watermark position)."""
    name = f"`{project}.{legacy.LEGACY_TABLES[table.key]}`"
    params: list[tuple[str, str, Any]] = [("lo", "DATE", window.lo), ("hi", "DATE", window.hi),
                                          ("full_after", "DATE", window.full_after)]
    where = [f"{table.date_column} BETWEEN @lo AND @hi"]
    if table.key == "injuries":  # partitioned by report_date: bound that too
        where.insert(0, "report_date BETWEEN @report_lo AND @hi")
        params.append(("report_lo", "DATE",
                       window.lo - dt.timedelta(days=legacy.INJURY_REPORT_LOOKBACK_DAYS)))
    if table.always:
        where.append(table.always)
    new = [f"{table.date_column} > @full_after"]
    if window.wm_ts is not None:
        new += [f"{table.arrival} > @wm_ts", f"({table.arrival} = @wm_ts AND {table.tiebreak} > @wm_key)"]
        params += [("wm_ts", "TIMESTAMP", window.wm_ts), ("wm_key", "STRING", window.wm_key or "")]
    where.append("(" + " OR ".join(new) + ")")
    sql = (f"SELECT *, {table.arrival} AS _bridge_arrival, {table.tiebreak} AS _bridge_key FROM {name} "
           f"WHERE {' AND '.join(where)}")
    return sql, params


def coverage_sql(project: str) -> str:
    """Players with a pre-game Odds API row on some dates (``@dates``): BettingPros is their fallback only
    when they have none (in-game snapshots do not count: the mapping ignores them)."""
    return (f"SELECT DISTINCT game_date, player_lookup FROM `{project}.{legacy.LEGACY_TABLES['odds']}` "
            "WHERE game_date IN UNNEST(@dates) "
            "AND (minutes_before_tipoff IS NULL OR minutes_before_tipoff >= 0)")


def bigquery_runner(project: str) -> QueryRunner:
    """A QueryRunner on BigQuery (the configured emulator when ``--bigquery-endpoint`` is set)."""
    from google.cloud import bigquery

    from pipeline.io import cloud

    client = cloud.bigquery_client(project)

    def run(sql: str, params: list[tuple[str, str, Any]]) -> list[dict[str, Any]]:
        qp = [bigquery.ArrayQueryParameter(n, t, list(v)) if isinstance(v, (list, tuple))
              else bigquery.ScalarQueryParameter(n, t, v) for n, t, v in params]
        job = client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=qp))
        return [dict(r.items()) for r in job.result(page_size=50_000)]
    return run


# --------------------------------------------------------------------------------------------
# One pass
# --------------------------------------------------------------------------------------------


class BridgeEvent(NamedTuple):
    """One event to publish: our kind, the typed row, the old table it came from."""

    kind: str
    row: tuple
    table: str


class TableCounts(NamedTuple):
    read: int = 0
    published: int = 0
    ignored: int = 0  # in-game snapshots, BettingPros rows of players the Odds API covers
    dead_letters: int = 0


class BridgePass(NamedTuple):
    """What one pass collected: events in publishing order, dead letters, per-table counts, the windows
    read and the new watermark of each table (a table whose read failed keeps its old one)."""

    events: list[BridgeEvent]
    dead_letters: list[schemas.DeadLetter]
    counts: dict[str, TableCounts]
    windows: dict[str, ReadWindow]
    watermarks: dict[str, Watermark]


def _old_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_bridge_")}


def _dead(key: str, error: str, row: Mapping[str, Any], game_date: Any = None) -> schemas.DeadLetter:
    return dead_letter(BRIDGE_SOURCE, error, {"table": legacy.LEGACY_TABLES[key], "row": _old_row(row)},
                       step=MAP_STEP, game_date=as_date(game_date))


def _error_text(exc: Exception) -> str:
    return exc.reason if isinstance(exc, ParseError) else f"{type(exc).__name__}: {exc}"


def _typed(key: str, kind: str, pairs: Iterable[tuple[Mapping[str, Any], Callable[[], dict | None]]],
           window_hours: tuple[float, float] | None):
    """(events, dead letters, ignored) of (old row, mapper) pairs; a mapper returning None is an ignored
    row (an in-game snapshot); a mapping or parse failure is a dead letter with its reason."""
    events, dead, ignored = [], [], 0
    for old, mapper in pairs:
        try:
            record = mapper()
            if record is None:
                ignored += 1
                continue
            events.append(BridgeEvent(kind, parse_record(kind, record, event_window_hours=window_hours), key))
        except MAPPING_ERRORS as exc:
            dead.append(_dead(key, _error_text(exc), old, old.get("game_date") or old.get("original_date")))
    return events, dead, ignored


def _advance(mark: Watermark | None, rows: Sequence[Mapping[str, Any]], window: ReadWindow) -> Watermark:
    """The watermark after reading ``rows`` in ``window``: the largest (arrival, key) seen, ``dates_to``
    the window's end (never moved backwards)."""
    mark = mark or Watermark()
    best = (mark.ts, mark.key or "") if mark.ts is not None else None
    for r in rows:
        ts = r.get("_bridge_arrival")
        if ts is None:
            continue
        ts = ts if isinstance(ts, dt.datetime) else dt.datetime.fromisoformat(str(ts))
        ts = ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
        pos = (ts, str(r.get("_bridge_key") or ""))
        if best is None or pos > best:
            best = pos
    dates_to = max(d for d in (mark.dates_to, window.hi) if d is not None)
    return Watermark(ts=best[0] if best else None, key=best[1] if best else None, dates_to=dates_to)


def _legacy_query(run: QueryRunner) -> Callable[[str, str, list[dt.date]], list[dict[str, Any]]]:
    """``legacy.read_rows_legacy``'s fetch (``(project, table_key, dates)``) on a QueryRunner."""
    def query(project: str, key: str, dates: list[dt.date]) -> list[dict[str, Any]]:
        params: list[tuple[str, str, Any]] = [("dates", "DATE", list(dates))]
        if key == "injuries":
            lookback = dt.timedelta(days=legacy.INJURY_REPORT_LOOKBACK_DAYS)
            params += [("report_from", "DATE", min(dates) - lookback), ("report_to", "DATE", max(dates))]
        return run(legacy.legacy_sql(project, key), params)
    return query


def collect(source: str, run: QueryRunner, watermarks: Mapping[str, Watermark], today: dt.date, *,
            lookback_days: int, days_ahead: int, window_hours: tuple[float, float] | None = None,
            progress: Callable[[str], None] | None = None) -> BridgePass:
    """One pass over the old tables of ``source`` (``bigquery-legacy://PROJECT``): the rows after each
    table's watermark, mapped and typed, in publishing order (event time, then schedule / injuries / odds).

    Args:
      run: the query runner (:func:`bigquery_runner`).
      watermarks: the current watermark per table key (:func:`read_watermarks`); a missing one: first pass.
      today: the US-Eastern date the window is built around.
      window_hours: the policy's ``event_time_window_hours`` (the stream parses with the same).
    """
    project = legacy.parse_legacy_uri(source)
    say = progress or (lambda _m: None)
    windows = {k: read_window(watermarks.get(k), today, lookback_days=lookback_days, days_ahead=days_ahead)
               for k in BRIDGE_TABLES}
    rows: dict[str, list[dict[str, Any]]] = {}
    events: list[BridgeEvent] = []
    dead: list[schemas.DeadLetter] = []
    counts: dict[str, TableCounts] = {}
    new_marks = dict(watermarks)
    for key, table in BRIDGE_TABLES.items():
        w = windows[key]
        say(f"reading {legacy.LEGACY_TABLES[key]}: game dates {w.lo}..{w.hi}"
            + (f", arrived after {w.wm_ts.isoformat()}" if w.wm_ts else "")
            + (f", in full after {w.full_after}" if w.full_after >= w.lo else ""))
        try:
            rows[key] = run(*window_sql(project, table, w))
        except Exception as exc:  # noqa: BLE001 - postponements has no known DDL; recorded, not fatal
            if key != "postponements":
                raise
            rows[key] = []
            dead.append(dead_letter(BRIDGE_SOURCE, f"{legacy.LEGACY_TABLES[key]} unreadable "
                                    f"({type(exc).__name__}); postponements not applied",
                                    {"table": legacy.LEGACY_TABLES[key]}, step="bridge_read"))
            counts[key] = TableCounts(dead_letters=1)
            continue
        new_marks[key] = _advance(watermarks.get(key), rows[key], w)

    # Odds API rows: one mapping each (in-game snapshots ignored).
    ev, dl, ign = _typed("odds", "odds", ((r, lambda r=r: legacy.odds_api_record(r)) for r in rows["odds"]),
                         window_hours)
    events += ev
    dead += dl
    counts["odds"] = TableCounts(len(rows["odds"]), len(ev), ign, len(dl))

    # BettingPros: only for players with no pre-game Odds API row on the date; game ids from the schedule.
    fallback = rows["odds_fallback"]
    ev, dl, ign = [], [], 0
    if fallback:
        dates = sorted({d for d in (as_date(r.get("game_date")) for r in fallback) if d is not None})
        covered = {(as_date(c["game_date"]), c["player_lookup"]) for c in run(coverage_sql(project),
                                                                            [("dates", "DATE", dates)])}
        lacking = [r for r in fallback
                   if (as_date(r.get("game_date")), r.get("player_lookup")) not in covered]
        ign = len(fallback) - len(lacking)
        sched, _ = legacy.read_rows_legacy(source, "schedule", dates, query=_legacy_query(run))
        game_ids = {}
        for s in sched:
            game_ids[(s.game_date, s.home_team)] = s.game_id
            game_ids[(s.game_date, s.away_team)] = s.game_id
        records = legacy.bettingpros_records(lacking, game_ids)
        ev, dl, _ = _typed("odds_fallback", "odds", ((rec, lambda rec=rec: rec) for rec in records),
                           window_hours)
    events += ev
    dead += dl
    counts["odds_fallback"] = TableCounts(len(fallback), len(ev), ign, len(dl))

    # Schedule: every game touched by a new schedule or postponement row, re-mapped from all its rows.
    touched = {(as_date(r.get("game_date")), str(r.get("game_id"))) for r in rows["schedule"]}
    touched |= {(as_date(r.get("original_date")), str(r.get("game_id"))) for r in rows["postponements"]}
    ev, dl = [], []
    if touched:
        dates = sorted({d for d, _ in touched if d is not None})
        fetch = _legacy_query(run)
        full = [r for r in fetch(project, "schedule", dates)
                if (as_date(r.get("game_date")), str(r.get("game_id"))) in touched]
        try:
            postponed = fetch(project, "postponements", dates)
        except Exception as exc:  # noqa: BLE001 - see above
            postponed = []
            dl.append(dead_letter(BRIDGE_SOURCE, f"{legacy.LEGACY_TABLES['postponements']} unreadable "
                                  f"({type(exc).__name__}); postponements not applied",
                                  {"table": legacy.LEGACY_TABLES["postponements"]}, step="bridge_read"))
        for r in legacy.latest_schedule_rows(full):  # a row may stand for two events (schedule_records)
            try:
                records = legacy.schedule_records(r, postponed)
            except MAPPING_ERRORS as exc:
                dl.append(_dead("schedule", _error_text(exc), r, r.get("game_date")))
                continue
            got, more, _ = _typed("schedule", "schedule", ((r, lambda rec=rec: rec) for rec in records),
                                  window_hours)
            ev += got
            dl += more
    events += ev
    dead += dl
    counts["schedule"] = TableCounts(len(rows["schedule"]), len(ev), 0, len(dl))
    if "postponements" not in counts:
        counts["postponements"] = TableCounts(len(rows["postponements"]))

    # Injury reports.
    ev, dl, ign = _typed("injuries", "injuries",
                         ((r, lambda r=r: legacy.injury_record(r)) for r in rows["injuries"]), window_hours)
    events += ev
    dead += dl
    counts["injuries"] = TableCounts(len(rows["injuries"]), len(ev), ign, len(dl))

    events.sort(key=lambda e: (event_time(e.kind, e.row), KIND_ORDER[e.kind]))
    return BridgePass(events, dead, counts, windows, new_marks)


# --------------------------------------------------------------------------------------------
# The warehouse side: watermarks and dead letters
# --------------------------------------------------------------------------------------------


def read_watermarks(warehouse, source: str) -> dict[str, Watermark]:
    """The current watermark of each old table of ``source``: its largest ``(watermark_ts, watermark_key)``
    and largest ``dates_to`` over the rows appended so far (one small query)."""
    by_name = {legacy.LEGACY_TABLES[k]: k for k in BRIDGE_TABLES}
    rows = warehouse.query(
        "SELECT source_table, watermark_ts, watermark_key, dates_to FROM ("
        "SELECT source_table, watermark_ts, watermark_key, "
        "MAX(dates_to) OVER (PARTITION BY source_table) AS dates_to, "
        "ROW_NUMBER() OVER (PARTITION BY source_table ORDER BY (watermark_ts IS NULL), watermark_ts DESC, "
        "watermark_key DESC) AS rn "
        f"FROM {warehouse.table_sql(WATERMARK_TABLE)} WHERE source = ?) WHERE rn = 1", [source])
    out = {}
    for r in rows:
        key = by_name.get(r["source_table"])
        if key is None:
            continue
        ts = r["watermark_ts"]
        if ts is not None and ts.tzinfo is None:
            ts = ts.replace(tzinfo=dt.UTC)
        out[key] = Watermark(ts=ts.astimezone(dt.UTC) if ts is not None else None, key=r["watermark_key"],
                             dates_to=as_date(r["dates_to"]))
    return out


def watermark_rows(result: BridgePass, before: Mapping[str, Watermark], source: str, run_id: str,
                   now: dt.datetime) -> list[schemas.BridgeWatermark]:
    """The ``bridge_watermarks`` rows of a published pass: one per table whose watermark moved."""
    out = []
    for key, mark in result.watermarks.items():
        if mark == before.get(key) or mark.dates_to is None:
            continue
        c = result.counts.get(key, TableCounts())
        out.append(schemas.BridgeWatermark(
            source=source, source_table=legacy.LEGACY_TABLES[key], watermark_ts=mark.ts,
            watermark_key=mark.key, dates_to=mark.dates_to, advanced_at=now, run_id=run_id,
            rows_read=c.read, rows_published=c.published, dead_letters=c.dead_letters))
    return out


def new_dead_letters(warehouse, rows: Sequence[schemas.DeadLetter]) -> list[schemas.DeadLetter]:
    """The dead letters not stored yet (a republished row's dead letter is written once)."""
    if not rows:
        return []
    dates = [r.game_date for r in rows if r.game_date is not None]
    sql = (f"SELECT step, error, payload FROM {warehouse.table_sql('dead_letters')} WHERE source = ? AND "
           "(game_date IS NULL" + (" OR game_date BETWEEN ? AND ?)" if dates else ")"))
    params: list[Any] = [BRIDGE_SOURCE] + ([min(dates), max(dates)] if dates else [])
    stored = {(r["step"], r["error"], r["payload"]) for r in warehouse.query(sql, params)}
    return [r for r in rows if (r.step, r.error, r.payload) not in stored]


def summary(result: BridgePass, published: int, seconds: float) -> str:
    """The one line a pass prints: per table rows read / published / ignored / dead letters, watermark."""
    parts = []
    for key in BRIDGE_TABLES:
        c = result.counts.get(key, TableCounts())
        mark = result.watermarks.get(key)
        where = (mark.ts.isoformat().replace("+00:00", "Z") if mark and mark.ts else "none")
        parts.append(f"{key} read {c.read} published {c.published} ignored {c.ignored} dead {c.dead_letters} "
                     f"(watermark {where}, dates to {mark.dates_to if mark else None})")
    return f"bridge pass: {published} events published in {seconds:.1f} s; " + "; ".join(parts)
