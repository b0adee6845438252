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

``scoring_window(n_models)`` - the global window, trigger ``Repeatedly(AfterAny(AfterCount(n_models + 1),
    AfterProcessingTime(SCORING_TIMEOUT_S)))``, DISCARDING, allowed lateness 0.
    Applied to the PlayerGames just before ``ScorePlayers`` (the slate's transform, unchanged): inside,
    a CoGroupByKey joins each PlayerGame with one raw prediction per eligible model. Each emission of
    a player-game has its own key (``game_id|player#seq``), so a pane fires as soon as the PlayerGame and
    its ``n_models`` predictions have arrived (early, per element group: latency of one inference); the
    processing-time fallback fires an incomplete pane if an inference failed (its dead letter is
    written), so nothing waits forever. DISCARDING: a key is never reused, nothing to accumulate.

Debounce - not a window: best bets of a date are recomputed by a processing-time timer in the per-date
    stateful DoFn (``transforms.streaming.BestBetsStateFn``, worked timeline in its docstring), because
    the selection must see the latest consensus of every player-game of the date at once.

On Dataflow the same definitions hold; the production variant differs only in its sources (see the
README: separate subscriptions and a slowly-changing side input for the feature store).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.transforms import trigger, window

SCORING_TIMEOUT_S = 10


def events_window() -> beam.WindowInto:
    """The global window with the default trigger (keyed state lives here)."""
    return beam.WindowInto(window.GlobalWindows())


def scoring_window(n_models: int, *, timeout_s: int = SCORING_TIMEOUT_S) -> beam.WindowInto:
    """Per-emission panes for ScorePlayers' CoGroupByKey: fire once a PlayerGame and its ``n_models``
    predictions are in (or after ``timeout_s`` of processing time), discarding, no lateness."""
    if n_models < 1:
        raise ValueError("scoring_window: at least one model")
    return beam.WindowInto(
        window.GlobalWindows(),
        trigger=trigger.Repeatedly(trigger.AfterAny(
            trigger.AfterCount(n_models + 1), trigger.AfterProcessingTime(int(timeout_s)))),
        accumulation_mode=trigger.AccumulationMode.DISCARDING,
        allowed_lateness=0,
    )
