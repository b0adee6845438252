"""File sources: the input kinds as JSON Lines or Parquet partitions, locally or on ``gs://``.

Layout (contract.md "Input formats")::

    INPUTS/KIND/game_date=YYYY-MM-DD/part-*.{jsonl,jsonl.gz,parquet}

Only the partitions of the requested dates are listed (``FileSystems.match``), so a slate reads one
folder per kind and a backfill reads exactly its range. A missing date folder is fine (no files); a
``part-*`` file with another extension is a launch error.

Each file is read in bulk (pyarrow for Parquet, line by line for JSON Lines) and every record goes
through :func:`pipeline.io.parse.parse_record` (JSON lines through ``parse_json_record``, which bounds
the line length). Nothing is dropped: a malformed JSON line, a record with a missing, mistyped or
out-of-range field, a row whose ``game_date`` is not its partition's (``game_date_mismatch``), an
unreadable (e.g. truncated) file becomes a ``schemas.DeadLetter`` built by ``parse.dead_letter``
(source=kind, step="parse", error="<code>: <detail>", payload=the raw line or the record as JSON or the
file path, cut by ``schemas.clip_text``; event_ts if readable, game_date from the partition path).

Usage in a graph::

    rows, dead = p | "ReadOdds" >> ReadInputs(inputs, "odds", [game_date])
    # or: read = p | ReadInputs(...); read.rows, read.dead_letters
    # several kinds in one step, each file's rows grouped by a key (the slate's join):
    read = p | ReadAllInputs(inputs, {"odds": dates, "box_scores": history_dates}, key_fn=player_key)

Rows carry their event time (``schemas.EVENT_TIME_FIELD``) as the element timestamp (ungrouped reads).
Counters ``pipeline.io/{kind}_rows`` and ``pipeline.io/{kind}_dead_letters`` count both outputs.

Without Beam (driver, tests, benchmarks)::

    rows, dead = read_rows_local(inputs, "odds", [game_date])
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.utils.windowed_value import WindowedValue

from pipeline import schemas
from pipeline.io.parse import (
    DEFAULT_EVENT_WINDOW_HOURS,
    GAME_DATE_MISMATCH,
    MALFORMED,
    ParseError,
    dead_letter,
    event_time,
    odds_rows_columnar,
    parse_json_record,
    parse_record,
    raw_event_time,
)

SUFFIXES: tuple[str, ...] = (".parquet", ".jsonl", ".jsonl.gz")
_PARTITION_DATE = re.compile(r"game_date=(\d{4}-\d{2}-\d{2})")
# Above this many dates a kind's files are found with one match of ``KIND/game_date=*/part-*`` filtered by
# date (a slate's season of box scores: 118 glob matches, one listing each on GCS, took 0.1 s locally).
WHOLE_KIND_MATCH_DATES = 8
METRICS_NAMESPACE = "pipeline.io"


def partition_dir(inputs: str, kind: str, game_date: dt.date) -> str:
    """The folder of one kind's partition for one date."""
    return FileSystems.join(inputs, kind, f"game_date={game_date.isoformat()}")


def _check_kind(kind: str) -> None:
    if kind not in schemas.INPUT_KINDS:
        raise ValueError(f"unknown input kind {kind!r}; expected one of {', '.join(schemas.INPUT_KINDS)}")


def input_files(inputs: str, kind: str, dates: Iterable[dt.date]) -> list[str]:
    """Paths of every ``part-*`` file of ``kind`` for ``dates``, sorted; missing folders give none.

    Raises:
        ValueError: unknown kind, or a ``part-*`` file whose extension is not one of ``SUFFIXES``.
    """
    return [path for path, _size in input_file_sizes(inputs, kind, dates)]


def input_file_sizes(inputs: str, kind: str, dates: Iterable[dt.date]) -> list[tuple[str, int]]:
    """``(path, size in bytes)`` of every file :func:`input_files` lists, sorted by path."""
    _check_kind(kind)
    wanted = set(dates)
    if not wanted:
        return []
    whole_kind = len(wanted) > WHOLE_KIND_MATCH_DATES  # one listing of the kind, not one per date
    if whole_kind:
        patterns = [FileSystems.join(inputs, kind, "game_date=*", "part-*")]
    else:
        patterns = [FileSystems.join(partition_dir(inputs, kind, d), "part-*") for d in sorted(wanted)]
    files: list[tuple[str, int]] = []
    for result in FileSystems.match(patterns):
        for meta in result.metadata_list:
            if whole_kind and partition_date(meta.path) not in wanted:
                continue
            if not meta.path.endswith(SUFFIXES):
                raise ValueError(
                    f"unsupported input file {meta.path!r}: expected one of {', '.join(SUFFIXES)}")
            files.append((meta.path, int(meta.size_in_bytes or 0)))
    return sorted(files)


# How many input bytes one read element takes (several small files of a kind together). A slate reads the
# season's box scores, one ~90 KB file per date: read one file per element, the reader's per-player groups
# were one row each (28k elements through the join's shuffle); ~11 files per element cut that to ~1/11.
# The bound keeps a read element's rows small in memory (a 1 MiB Parquet odds batch: ~90k rows, ~60 MB).
READ_BATCH_BYTES = 1 << 20


def file_batches(files: Iterable[tuple[str, int]], budget: int = READ_BATCH_BYTES) -> list[tuple[str, ...]]:
    """Consecutive files grouped into batches of at most ``budget`` bytes (a bigger file alone)."""
    batches: list[tuple[str, ...]] = []
    current: list[str] = []
    size = 0
    for path, n in files:
        if current and size + n > budget:
            batches.append(tuple(current))
            current, size = [], 0
        current.append(path)
        size += n
    if current:
        batches.append(tuple(current))
    return batches


def partition_date(path: str) -> dt.date | None:
    """The ``game_date=`` of a partition path, or None."""
    m = _PARTITION_DATE.search(path)
    return dt.date.fromisoformat(m.group(1)) if m else None


Window = tuple[float, float] | None  # Policy.event_time_window_hours (None: the policy default)


def _in_partition(row: tuple, game_date: dt.date | None) -> tuple:
    """The layout rule: a row's ``game_date`` is its partition's (else ``game_date_mismatch``)."""
    if game_date is not None and row.game_date != game_date:
        raise ParseError(GAME_DATE_MISMATCH, f"game_date {row.game_date.isoformat()} in the partition "
                                             f"game_date={game_date.isoformat()}")
    return row


def _iter_records(kind: str, records: Iterable[dict], game_date: dt.date | None, window: Window
                  ) -> Iterator[tuple]:
    for record in records:
        try:
            yield _in_partition(parse_record(kind, record, event_window_hours=window), game_date)
        except ParseError as e:
            yield dead_letter(kind, e.reason, record, event_ts=raw_event_time(kind, record),
                              game_date=game_date)


def _iter_parquet(path: str, kind: str, game_date: dt.date | None, window: Window) -> Iterator[tuple]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            data = f.read()
        table = pq.read_table(pa.BufferReader(data))
    except (OSError, pa.ArrowException) as e:
        yield dead_letter(kind, f"{MALFORMED}: unreadable parquet file {path}: {e}", path,
                          game_date=game_date)
        return
    for batch in table.to_batches(max_chunksize=65536):
        fast = odds_rows_columnar(batch, window or DEFAULT_EVENT_WINDOW_HOURS, game_date) \
            if kind == "odds" else None
        if fast is None:
            yield from _iter_records(kind, _batch_records(batch), game_date, window)
            continue
        # The rows the columnar check could not vouch for go the record way, in file order.
        rest = [i for i, row in enumerate(fast) if row is None]
        if rest:
            records = _iter_records(kind, _batch_records(batch.take(pa.array(rest, pa.int64()))), game_date,
                                    window)
            yield from (row if row is not None else next(records) for row in fast)
        else:
            yield from fast


def _batch_records(batch: Any) -> Iterator[dict]:
    """Records of an Arrow batch as dicts, converted column by column (much faster than to_pylist()).

    Timezone-aware timestamp columns are cast to naive ones first: Arrow stores UTC instants, so the
    values are the same and the parser reads naive as UTC, without building a tz object per value. A
    column Arrow cannot convert to Python (e.g. a timestamp beyond year 9999) is converted value by value
    and the values that fail stay Arrow scalars, so only their rows become dead letters.
    """
    import pyarrow as pa

    names = batch.schema.names
    columns = []
    for col in batch.columns:
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("us"), safe=False)
        try:
            columns.append(col.to_pylist())
        except (OverflowError, ValueError, pa.ArrowException):
            columns.append([_scalar_value(v) for v in col])
    for values in zip(*columns, strict=True):
        yield dict(zip(names, values, strict=True))


def _scalar_value(scalar: Any) -> Any:
    try:
        return scalar.as_py()
    except (OverflowError, ValueError):
        return scalar  # the parser turns it into an out_of_range dead letter


def _iter_jsonl(path: str, kind: str, game_date: dt.date | None, window: Window) -> Iterator[tuple]:
    try:
        with FileSystems.open(path) as raw:  # compression from the suffix (.gz)
            for n, line in enumerate(iter(raw.readline, b""), start=1):
                if not line.strip():
                    continue
                record = None
                try:
                    record, row = parse_json_record(kind, line, event_window_hours=window)
                    yield _in_partition(row, game_date)
                except ParseError as e:
                    record = getattr(e, "record", record)
                    text = line.decode("utf-8", "replace").rstrip("\n")
                    yield dead_letter(kind, f"{e.reason} (line {n})", text,
                                      event_ts=raw_event_time(kind, record), game_date=game_date)
    except (OSError, EOFError, ValueError) as e:  # unreadable or corrupt (e.g. truncated gzip) file
        yield dead_letter(kind, f"{MALFORMED}: unreadable file {path}: {e}", path, game_date=game_date)


def iter_file(path: str, kind: str, event_window_hours: Window = None) -> Iterator[tuple]:
    """Typed rows and ``DeadLetter`` rows of one input file, in file order; never raises on bad data."""
    _check_kind(kind)
    game_date = partition_date(path)
    if path.endswith(".parquet"):
        return _iter_parquet(path, kind, game_date, event_window_hours)
    return _iter_jsonl(path, kind, game_date, event_window_hours)


def read_rows_local(
    inputs: str, kind: str, dates: Iterable[dt.date], event_window_hours: Window = None
) -> tuple[list, list[schemas.DeadLetter]]:
    """Every row of ``kind`` for ``dates`` without Beam: (typed rows, dead letters)."""
    rows: list = []
    dead: list[schemas.DeadLetter] = []
    for path in input_files(inputs, kind, dates):
        for item in iter_file(path, kind, event_window_hours):
            (dead if type(item) is schemas.DeadLetter else rows).append(item)
    return rows, dead


class RowGroup(list):
    """The rows of one key from one read element (:class:`ParseFileFn` with ``key_fn``): a plain list to
    every consumer. Being a subclass, Beam's FastPrimitivesCoder does not walk it row by row (a NamedTuple
    row is not one of its primitive types, so each row was a separate pickle, ~33 us per row to encode and
    decode at the join's shuffle); it pickles the group in one call (bench/bench_backfill.py).

    Rows of one NamedTuple class are pickled column by column (``__reduce_ex__``): the class once, one list
    per field, equal strings and dates of the group written once. Row by row, pickle called the class's
    ``__getnewargs__`` on the way out and its Python ``__new__`` on the way back for every row, at the
    shuffle every season's 2.8 M odds rows cross. Measured with the collector paused (a player's odds of
    one date, 62 rows a group; a player's season of box scores, 57 rows a group): odds 40 -> 22 ms out
    and 14 -> 7 ms back per 12k rows, box scores 76-124 -> 70 ms out and 26-52 -> 20 ms back per 28k
    rows, bytes -20 to -58 %. Any other content (mixed classes, plain tuples) is pickled as a list."""

    __slots__ = ()

    def __reduce_ex__(self, protocol):
        cls = type(self[0]) if self else None
        if cls is None or not issubclass(cls, tuple) or not hasattr(cls, "_fields") \
                or not all(type(row) is cls for row in self):
            return super().__reduce_ex__(protocol)
        return _rows_from_columns, (cls, _shared_columns(self))


_SHAREABLE = ({str, type(None)}, {dt.date, type(None)})  # column types whose equal values are identical


def _shared_columns(rows: list) -> list:
    """The rows' columns; in columns of strings or of dates (and None) every equal value replaced by one
    object (one dict for the group), so pickle writes it once and refers back to it after. Only those
    exact types: equal values of others can differ (-0.0 and 0.0, 1 and True, one instant in two time
    zones)."""
    one: dict = {}
    columns = []
    for column in zip(*rows, strict=True):
        kinds = set(map(type, column))
        if any(kinds <= shareable for shareable in _SHAREABLE):
            column = list(map(one.setdefault, column, column))
        columns.append(column)
    return columns


def _rows_from_columns(cls: type, columns: list[list]) -> RowGroup:
    """A RowGroup back from :meth:`RowGroup.__reduce_ex__`'s columns (``tuple.__new__`` is what the
    class's ``_make`` calls, without a Python frame per row)."""
    return RowGroup(map(tuple.__new__, itertools.repeat(cls), zip(*columns, strict=True)))


class GroupInBundleFn(beam.DoFn):
    """Rows -> ``(key, RowGroup[rows])``: a bundle's rows grouped by ``key_fn(row)`` (and window), emitted
    when the bundle finishes, for a GroupByKey downstream. It moves one element per key and bundle, pickled
    in one call, instead of one per row (a NamedTuple row is not one of FastPrimitivesCoder's types: each
    was a separate pickle at every Flatten and at the shuffle); the consumer reads the groups' rows. This is
    the partial grouping Beam's combiner lifting does, placed before the Flatten that precedes the
    GroupByKey (lifting cannot reach across it). ``key_fn`` may raise to fail the run on a row that must not
    exist (a planning bug). A group is emitted as soon as it holds ``max_rows`` rows, so what a bundle holds
    is bounded however large the runner makes it (Dataflow's batch bundles can be whole work items)."""

    def __init__(self, key_fn: Callable[[Any], Any], max_rows: int = 10_000):
        self._key_fn, self._max_rows = key_fn, max_rows

    def start_bundle(self):
        self._groups: dict = {}

    def process(self, row, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        key = (self._key_fn(row), window)
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = group = [RowGroup(), timestamp]
        group[0].append(row)
        group[1] = max(group[1], timestamp)
        if len(group[0]) >= self._max_rows:  # in this row's window: the group's
            del self._groups[key]
            yield beam.window.TimestampedValue((key[0], group[0]), group[1])

    def finish_bundle(self):
        for (key, window), (rows, timestamp) in self._groups.items():
            yield WindowedValue((key, rows), timestamp, (window,))
        self._groups = {}


def rows_of_groups(items: Iterable[Any]) -> list:
    """The rows of a GroupByKey's values that are RowGroups (:class:`GroupInBundleFn`) or markers (None)."""
    return [row for group in items if group is not None for row in group]


class ParseFileFn(beam.DoFn):
    """Reads input files of one kind and parses every record; the element is ``(kind, path)`` or
    ``(kind, (path, ...))`` (a batch of files, :func:`file_batches`, read in order).

    Main output: typed rows timestamped at their event time; or, with ``key_fn``, the element's rows
    grouped by ``key_fn(row)``: one ``(key, RowGroup[rows])`` per key and element, in file order (the
    files are held whole anyway, and a consumer that groups by that key then handles one element per key
    and batch of files instead of one per row). Tagged output ``dead_letters``: DeadLetter rows. Never
    raises on bad data.
    """

    DEAD_LETTERS = "dead_letters"

    def __init__(self, event_window_hours: Window = None, key_fn: Callable[[tuple], Any] | None = None):
        self.window = tuple(event_window_hours) if event_window_hours else None
        self.key_fn = key_fn
        self.read_ms = Metrics.distribution(METRICS_NAMESPACE, "read_ms")

    def setup(self):
        self._rows = {k: Metrics.counter(METRICS_NAMESPACE, f"{k}_rows") for k in schemas.INPUT_KINDS}
        self._dead = {k: Metrics.counter(METRICS_NAMESPACE, f"{k}_dead_letters") for k in schemas.INPUT_KINDS}

    def process(self, element):
        kind, paths = element
        n_rows = n_dead = 0
        # Parse the whole batch before yielding, so read_ms is the read+parse time alone (downstream steps
        # fused into this stage run inside each yield).
        started = time.perf_counter()
        items = [item for path in ((paths,) if isinstance(paths, str) else paths)
                 for item in iter_file(path, kind, self.window)]
        self.read_ms.update(int((time.perf_counter() - started) * 1000))
        groups: dict[Any, list] = {}
        for item in items:
            if type(item) is schemas.DeadLetter:
                n_dead += 1
                yield beam.pvalue.TaggedOutput(self.DEAD_LETTERS, item)
            elif self.key_fn is not None:
                n_rows += 1
                key = self.key_fn(item)
                group = groups.get(key)
                if group is None:
                    groups[key] = group = RowGroup()
                group.append(item)
            else:
                n_rows += 1
                yield beam.window.TimestampedValue(item, event_time(kind, item).timestamp())
        yield from groups.items()
        self._rows[kind].inc(n_rows)
        self._dead[kind].inc(n_dead)


def input_files_by_kind(inputs: str, dates_by_kind: Mapping[str, Iterable[dt.date]]) -> list[tuple[str, str]]:
    """``(kind, path)`` of every input file of each kind for its dates (see :func:`input_files`)."""
    return [(kind, path) for kind in sorted(dates_by_kind)
            for path in input_files(inputs, kind, dates_by_kind[kind])]


def input_batches_by_kind(inputs: str, dates_by_kind: Mapping[str, Iterable[dt.date]],
                          budget: int = READ_BATCH_BYTES) -> list[tuple[str, tuple[str, ...]]]:
    """``(kind, (path, ...))``: the input files of each kind for its dates in :func:`file_batches`."""
    return [(kind, batch) for kind in sorted(dates_by_kind)
            for batch in file_batches(input_file_sizes(inputs, kind, dates_by_kind[kind]), budget)]


class ReadAllInputs(beam.PTransform):
    """Reads several input kinds, each for its own dates, from the file layout in one step.

    Args:
        inputs: a local folder or ``gs://`` prefix holding ``KIND/game_date=.../part-*`` files.
        dates_by_kind: ``{kind: game dates to read}`` (kinds of ``schemas.INPUT_KINDS``).
        event_window_hours: the run policy's ``event_time_window_hours`` (None: the policy default).
        key_fn: None, or a function of a typed row: then ``.rows`` holds ``(key, [rows])`` groups, one
            per key and batch of files (see :class:`ParseFileFn`).

    Returns:
        A ``DoOutputsTuple``: ``.rows`` (typed rows of every kind, each at its event time, or their
        groups by ``key_fn``) and ``.dead_letters``. Every kind comes out of one ParDo, so a consumer that
        needs several kinds together (``transforms.slate.JoinPlayerGames``) gets them without a Flatten.

    The file list is resolved when the graph is built (a clear error at launch for unsupported files).
    Small files of a kind are read together, up to ``READ_BATCH_BYTES`` per element (:func:`file_batches`;
    the season's box scores of a slate: ~11 date files per element); ``Create`` spreads the batches over
    workers (it reshuffles several elements itself); a file is read by one DoFn call.
    """

    def __init__(self, inputs: str, dates_by_kind: Mapping[str, Iterable[dt.date]],
                 event_window_hours: Window = None, key_fn: Callable[[tuple], Any] | None = None):
        super().__init__()
        for kind in dates_by_kind:
            _check_kind(kind)
        self.inputs = inputs
        self.dates_by_kind = {k: sorted(set(ds)) for k, ds in dates_by_kind.items()}
        self.window = event_window_hours
        self.key_fn = key_fn

    def expand(self, pbegin):
        batches = input_batches_by_kind(self.inputs, self.dates_by_kind)
        return (
            pbegin
            | "ListFiles" >> beam.Create(batches)
            | "ParseFiles" >> beam.ParDo(ParseFileFn(self.window, self.key_fn)).with_outputs(
                ParseFileFn.DEAD_LETTERS, main="rows")
        )


class ReadInputs(beam.PTransform):
    """Reads one input kind for some dates from the file layout (:class:`ReadAllInputs` of one kind).

    Args:
        inputs: a local folder or ``gs://`` prefix holding ``KIND/game_date=.../part-*`` files.
        kind: a key of ``schemas.INPUT_KINDS``.
        dates: the game dates to read.
        event_window_hours: the run policy's ``event_time_window_hours`` (None: the policy default).

    Returns:
        A ``DoOutputsTuple``: unpack as ``rows, dead_letters = p | ReadInputs(...)`` or use the
        attributes ``.rows`` and ``.dead_letters``.
    """

    def __init__(self, inputs: str, kind: str, dates: Iterable[dt.date], event_window_hours: Window = None):
        super().__init__()
        _check_kind(kind)
        self.inputs = inputs
        self.kind = kind
        self.dates = sorted(set(dates))
        self.window = event_window_hours

    def expand(self, pbegin):
        return pbegin | "ReadAll" >> ReadAllInputs(self.inputs, {self.kind: self.dates}, self.window)
