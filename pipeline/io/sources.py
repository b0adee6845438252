"""Where inputs come from: the one place that knows files from BigQuery.

``ReadSource(inputs, kind, dates)`` returns a ``DoOutputsTuple`` with ``.rows`` (typed rows at their event
time) and ``.dead_letters`` whatever the location: a local folder or ``gs://`` prefix of input files
(``pipeline.io.files``), or ``bigquery://PROJECT.DATASET`` (``pipeline.io.bigquery``, one
partition-filtered query per kind). ``ReadSources(inputs, {kind: dates})`` reads several kinds into one
PCollection of typed rows (files: in one step, so a join of several kinds needs no Flatten).
``read_local`` does the same without Beam, for the small reads a launch needs (the schedule, to resolve
decision times).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import apache_beam as beam

BIGQUERY_SCHEME = "bigquery://"


def is_bigquery(location: str | None) -> bool:
    return bool(location) and location.startswith(BIGQUERY_SCHEME)


class ReadSource(beam.PTransform):
    """Reads one input kind for some dates from files or BigQuery (see the module docstring).

    ``event_window_hours`` is the run policy's ``event_time_window_hours`` (None: the policy default);
    both sources parse with the same ``pipeline.io.parse`` rules.
    """

    def __init__(self, inputs: str, kind: str, dates: Iterable[dt.date],
                 event_window_hours: tuple[float, float] | None = None):
        super().__init__()
        self.inputs, self.kind, self.dates = inputs, kind, sorted(set(dates))
        self.window = event_window_hours

    def expand(self, pbegin):
        if self.inputs.startswith("bigquery-legacy://"):  # the old system's tables (issue #11)
            from pipeline.io import legacy

            return pbegin | legacy.ReadLegacyInputs(self.inputs, self.kind, self.dates)
        if is_bigquery(self.inputs):
            from pipeline.io import bigquery

            return pbegin | bigquery.ReadBigQueryInputs(self.inputs, self.kind, self.dates,
                                                         event_window_hours=self.window)
        from pipeline.io import files

        return pbegin | files.ReadInputs(self.inputs, self.kind, self.dates, event_window_hours=self.window)


class SourceRows(NamedTuple):
    """What :class:`ReadSources` returns: typed rows of every kind read, and their dead letters."""

    rows: beam.PCollection
    dead_letters: beam.PCollection


class ReadSources(beam.PTransform):
    """Reads several input kinds, each for its own dates, into one PCollection of typed rows.

    Args:
      inputs: as :class:`ReadSource`.
      dates_by_kind: ``{kind: game dates}``.
      event_window_hours: the run policy's ``event_time_window_hours`` (None: the policy default).
      key_fn: None, or a function of a typed row: then ``.rows`` holds ``(key, [rows])`` groups (files:
        one per key and batch of files, ``files.ParseFileFn``; BigQuery: one per row).
    Returns: a :class:`SourceRows` (``.rows`` of every kind at their event times, or their groups by
      ``key_fn``; ``.dead_letters``).

    Files are read by one step for every kind (``files.ReadAllInputs``); BigQuery and the old system's
    tables are read kind by kind (one query each) and flattened.
    """

    def __init__(self, inputs: str, dates_by_kind: Mapping[str, Iterable[dt.date]],
                 event_window_hours: tuple[float, float] | None = None,
                 key_fn: Callable[[tuple], Any] | None = None):
        super().__init__()
        self.inputs = inputs
        self.dates_by_kind = {k: sorted(set(ds)) for k, ds in dates_by_kind.items()}
        self.window = event_window_hours
        self.key_fn = key_fn

    def expand(self, pbegin):
        if self.inputs.startswith("bigquery-legacy://") or is_bigquery(self.inputs):
            reads = [pbegin | f"Read_{kind}" >> ReadSource(self.inputs, kind, dates, self.window)
                     for kind, dates in sorted(self.dates_by_kind.items())]
            rows = [r.rows for r in reads] | "AllRows" >> beam.Flatten()
            if self.key_fn is not None:
                key_fn = self.key_fn
                rows = rows | "KeyRows" >> beam.Map(lambda row: (key_fn(row), [row]))
            return SourceRows(
                rows=rows,
                dead_letters=[r.dead_letters for r in reads] | "AllDeadLetters" >> beam.Flatten(),
            )
        from pipeline.io import files

        read = pbegin | files.ReadAllInputs(self.inputs, self.dates_by_kind, event_window_hours=self.window,
                                            key_fn=self.key_fn)
        return SourceRows(rows=read.rows, dead_letters=read.dead_letters)


def read_local(inputs: str, kind: str, dates: Iterable[dt.date],
               event_window_hours: tuple[float, float] | None = None):
    """(typed rows, dead letters) of one kind for some dates, read in bulk without Beam."""
    if inputs.startswith("bigquery-legacy://"):  # the old system's tables (issue #11)
        from pipeline.io import legacy

        return legacy.read_rows_legacy(inputs, kind, dates)
    if is_bigquery(inputs):
        from pipeline.io import bigquery

        return bigquery.read_rows_bigquery(inputs, kind, dates, event_window_hours=event_window_hours)
    from pipeline.io import files

    return files.read_rows_local(inputs, kind, dates, event_window_hours=event_window_hours)
