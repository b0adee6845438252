"""Every window, trigger, accumulation mode and allowed lateness of the streaming job, in one place.

The streaming job (``pipeline/stream_graph.py``) is state-driven rather than window-driven: a line move
must re-score one player-game at once, whatever the time of day, and a pick's lifecycle runs until its
game's tip-off, which no fixed window boundary matches. So:

``EVENTS`` - the global window, default trigger, no allowed lateness needed.
    Used for every keyed state: the per player-game state (line book, feature row, injuries, schedule)
    and the per game-date state (latest consensus per player-game, published picks). The global window
    never closes, so an event is never "late" for it: an odds snapshot backdated behind the wall-clock
    watermark of the local Pub/Sub source (beam-notes) still updates the line book, and the event time
    inside the payload (snapshot, report, schedule event time), not the element timestamp, is the clock
    of the domain rules. State is bounded by clearing it when a game is final.

Scoring join - not a window: a player-game version (key ``game_id|player#n``) is joined with the raw
    prediction of every model eligible on its date by a stateful DoFn in the global window
    (``transforms.streaming.CompleteModelSetFn``, worked timeline in its docstring). It emits once the
    set is complete (latency of one inference, no trigger to tune) and a processing-time timer
    ``SCORING_TIMEOUT_S`` after the version's first element dead-letters an incomplete set with the
    missing models. A trigger-based join (a count or processing-time trigger over a CoGroupByKey) could
    fire a pane with some of the models, i.e. a partial consensus, or drop a re-score without a trace;
    completion is a property of the data, so it is decided on the data.

Debounce - not a window: best bets of a date are recomputed by a processing-time timer in the per-date
    stateful DoFn (``transforms.streaming.BestBetsStateFn``, worked timeline in its docstring), because
    the selection must see the latest consensus of every player-game of the date at once. Locking is
    decided in event time all the same: a recomputation that crosses a tip-off waits (the same timer,
    at most ``SCORING_TIMEOUT_S``) for versions decided before the tip-off that are still being scored,
    then decides the date just before each crossed tip-off and then at its clock
    (``streaming.catch_up_points``), so the debounce never changes which picks a game locks with.

State lifetime - not a window: per game date (``transforms.streaming.DateStateFn``), once every game of
    the date is done (final, cancelled or postponed, by the latest schedule event per game), a
    processing-time timer ``STATE_GRACE_S`` ahead clears the date's reference state, every player-game
    state of the date, its scoring-join state and its best-bets state; a ``closed`` marker per date (a
    few bytes, one per date of the season) turns later events of that date into dead letters. The grace
    period leaves room for late corrections of a final score's day (a stat correction, a late odds
    snapshot) without keeping a day's state for the rest of the season.

Warehouse batches (BigQuery only) - not a window: the stream's versioned rows and dead letters are
    buffered per table by a stateful DoFn in the global window (``io.stream_sinks.BufferWarehouseRowsFn``,
    keyed by table) and written once ``WAREHOUSE_BATCH_S`` of processing time after a batch's first row
    (or at ``WAREHOUSE_BATCH_MAX_ROWS`` rows, or when the window ends on a drain). Processing time, not
    event time: the rows carry old event times (a replay, ``--rebuild-as-of``) and an event-time window
    would drop them as late or hold them for days; the global window never drops a row. Pick changes,
    exports and the picks-changes message are never buffered (the latency path); on DuckDB nothing is.

On Dataflow the same definitions hold; the production variant differs only in its sources (see the
README: separate subscriptions and a slowly-changing side input for the feature store).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.transforms import window

SCORING_TIMEOUT_S = 10  # seconds a version may wait for its complete model set
STATE_GRACE_S = 6 * 3600  # seconds a finished date's state is kept (processing time) before it is cleared
# BigQuery: seconds of processing time a batch of versioned rows / dead letters is buffered before its one
# write (288 writes per table per day; docs/bigquery-writes.md), and the most rows one batch holds.
WAREHOUSE_BATCH_S = 300
WAREHOUSE_BATCH_MAX_ROWS = 50_000


def events_window() -> beam.WindowInto:
    """The global window with the default trigger (keyed state lives here)."""
    return beam.WindowInto(window.GlobalWindows())
