"""A simulated season as input tables: generation, typed rows, DataFrames, and the file layout.

:func:`simulate` runs :mod:`sim.engine` (games, injuries, box scores, market view), :mod:`sim.odds`
(multi-book snapshots, line book at each date's decision time and at each tip-off) and
:mod:`sim.features` (feature-store rows), and returns a :class:`Simulation`. :meth:`Simulation.write`
writes ``OUT/KIND/game_date=YYYY-MM-DD/part-00000.{parquet|jsonl}`` for schedule, odds, injuries,
features, box_scores plus ``OUT/manifest.json``; the bytes depend only on the seed and the arguments.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.schemas import (
    FEATURE_NAMES,
    BoxScore,
    FeatureRow,
    InjuryReport,
    OddsSnapshot,
    ScheduleEvent,
)
from sim import engine, features, odds
from sim import league as L

GENERATOR_VERSION = "sim-1.3"
KINDS = ("schedule", "odds", "injuries", "features", "box_scores")
UTC = dt.UTC


def _dt(x: float | int) -> dt.datetime:
    return engine.EPOCH + dt.timedelta(seconds=int(x))


class Simulation:
    """Simulated input tables. ``frames[kind]`` are DataFrames in the contract's columns (timestamps as
    tz-aware UTC, dates as ``datetime.date``); ``.schedule`` ... ``.box_scores`` are typed-row lists
    (built on first access; use them for small simulations)."""

    def __init__(self, frames: dict[str, pd.DataFrame], meta: dict, odds_arrays: dict | None = None) -> None:
        self.frames = frames
        self.meta = meta
        self._odds_arrays = odds_arrays

    def df(self, kind: str) -> pd.DataFrame:
        return self.frames[kind]

    @cached_property
    def schedule(self) -> list[ScheduleEvent]:
        return _rows(ScheduleEvent, self.frames["schedule"])

    @cached_property
    def odds(self) -> list[OddsSnapshot]:
        return _rows(OddsSnapshot, self.frames["odds"])

    @cached_property
    def injuries(self) -> list[InjuryReport]:
        return _rows(InjuryReport, self.frames["injuries"])

    @cached_property
    def box_scores(self) -> list[BoxScore]:
        return _rows(BoxScore, self.frames["box_scores"])

    @cached_property
    def features(self) -> list[FeatureRow]:
        df = self.frames["features"]
        feats = df[list(FEATURE_NAMES)].to_numpy(dtype=float)
        out = []
        for i, r in enumerate(df.itertuples(index=False)):
            vals = tuple(None if math.isnan(v) else float(v) for v in feats[i])
            pg = r.prev_game_closing_line
            out.append(
                FeatureRow(
                    r.player_lookup,
                    r.game_id,
                    r.game_date,
                    r.team_abbr,
                    r.opponent_team_abbr,
                    r.feature_version,
                    vals,
                    float(r.feature_quality_score),
                    r.quality_alert_level,
                    float(r.matchup_quality_pct),
                    int(r.required_default_count),
                    tuple(int(x) for x in r.default_feature_indices),
                    None if pg is None or (isinstance(pg, float) and math.isnan(pg)) else float(pg),
                )
            )
        return out

    def write(self, out_dir: str | os.PathLike, progress=None) -> Path:
        return write_season(self, Path(out_dir), progress=progress)


def _none(v):
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if v is pd.NaT:
        return None
    return v


def _rows(row_type, df: pd.DataFrame) -> list:
    cols = list(row_type._fields)
    out = []
    for rec in df[cols].itertuples(index=False, name=None):
        vals = []
        for c, v in zip(cols, rec, strict=True):
            v = _none(v)
            if isinstance(v, pd.Timestamp):
                v = v.to_pydatetime()
            if isinstance(v, np.integer):
                v = int(v)
            if isinstance(v, np.floating):
                v = float(v)
            if isinstance(v, np.bool_):
                v = bool(v)
            if c in ("over_price", "under_price") and v is not None:
                v = int(v)
            vals.append(v)
        out.append(row_type(*vals))
    return out


def simulate(
    seed: int = 7,
    season: str = "2025-26",
    teams: tuple[str, ...] | None = None,
    start: str | dt.date | None = None,
    days: int | None = None,
    progress=None,
) -> Simulation:
    """Simulates a season (or a small league of ``teams``) and keeps the dates in [start, start+days).

    The whole season up to the window's end is simulated so the kept feature rows have history.
    """
    s0, s1 = L.SEASONS[season]
    start_d = dt.date.fromisoformat(start) if isinstance(start, str) else (start or s0)
    end_d = min(s1, start_d + dt.timedelta(days=days - 1)) if days else s1
    rng_mkt = np.random.default_rng([seed, 1])
    rng_feat = np.random.default_rng([seed, 2])
    sd = engine.run_season(seed, season, teams, end=end_d, progress=progress)
    games = sd.games
    market = sd.market
    # decision time per date: 1 h before the first tip-off of the date's games that are not postponed
    live = games[~games["postponed"].astype(bool)]
    first_tip = live.groupby("game_date")["tip"].min()
    decision = {
        d: int(first_tip.get(d, games[games.game_date == d]["tip"].min())) - 3600
        for d in sorted(games["game_date"].unique())
    }
    mdates = market["game_date"].tolist()
    open_ts = np.array([engine.et_ts(d, -6.0) for d in mdates], dtype=np.float64)
    morning_ts = np.array([engine.et_ts(d, 9.0) for d in mdates], dtype=np.float64)
    if progress:
        progress(f"generating odds for {len(market)} lined player-games")
    oa = odds.generate_odds(rng_mkt, market, sd.news, open_ts, morning_ts, s0)
    odds_df = odds_frame(oa, market)
    if progress:
        progress(f"line books (pipeline rule) for {len(market)} player-games at decision time and tip-off")
    keys = market[["player_lookup", "game_id", "game_date"]]
    dec_arr = np.array([decision[d] for d in mdates], dtype=np.int64)
    at_dec, at_tip = odds.line_books(odds_df, keys, dec_arr, market["tip"].to_numpy(np.int64))
    lb_dec, lb_close = odds.line_book_frame(at_dec), odds.line_book_frame(at_tip)
    key = list(zip(market["pid"], market["game_id"], strict=True))
    mkt_dec = {
        k: {"line": a, "opening": b, "move": c, "std": s}
        for k, a, b, c, s in zip(
            key, lb_dec["line"], lb_dec["opening"], lb_dec["move"], lb_dec["std"], strict=True
        )
    }
    closing = {k: float(v) for k, v in zip(key, lb_close["line"], strict=True) if not math.isnan(v)}
    structural: dict[str, list[dt.date]] = {}
    joined = {}
    for p in sd.players.values():
        joined[p.pid] = p.joined
        for d, old_team in p.history:
            structural.setdefault(old_team, []).append(d)
            structural.setdefault(p.team, []).append(d)
    if progress:
        progress(f"computing features for {len(sd.roster)} player-games")
    feats = features.build_features(
        rng_feat,
        sd.roster,
        sd.box,
        games,
        sd.injuries,
        decision,
        mkt_dec,
        closing,
        structural,
        joined,
        progress=progress,
    )
    frames = _frames(sd, odds_df, feats)
    meta = {
        "season": season,
        "seed": seed,
        "teams": list(teams) if teams else list(L.TRICODES),
        "generator_version": GENERATOR_VERSION,
        "decision_ts": {d.isoformat(): _dt(v).isoformat() for d, v in decision.items()},
    }
    market_view = market[["player_lookup", "game_id", "game_date", "tip"]].copy()
    market_view["closing_line"] = lb_close["line"].to_numpy()
    market_view["closing_n_books"] = lb_close["n_books"].to_numpy()
    market_view["opening_line"] = lb_close["opening"].to_numpy()
    market_view["decision_line"] = lb_dec["line"].to_numpy()
    market_view["decision_std"] = lb_dec["std"].to_numpy()
    market_view["decision_n_books"] = lb_dec["n_books"].to_numpy()
    frames["_market"] = market_view
    frames["_roster"] = sd.roster[["player_lookup", "game_id", "game_date", "team_abbr"]].copy()
    if start_d > s0 or end_d < s1:
        for k in list(frames):
            df = frames[k]
            frames[k] = df[(df["game_date"] >= start_d) & (df["game_date"] <= end_d)].reset_index(drop=True)
    meta["dates"] = sorted({d.isoformat() for d in frames["schedule"]["game_date"]})
    meta["decision_ts"] = {d: v for d, v in meta["decision_ts"].items() if d in set(meta["dates"])}
    meta["counts"] = {k: int(len(frames[k])) for k in KINDS}
    return Simulation(frames, meta)


def odds_frame(oa: dict[str, np.ndarray], market: pd.DataFrame) -> pd.DataFrame:
    """The odds snapshots of :func:`sim.odds.generate_odds` in the contract's columns."""
    m = oa["m"]
    return pd.DataFrame(
        {
            "player_lookup": market["player_lookup"].to_numpy()[m],
            "player_name": market["player_name"].to_numpy()[m],
            "game_id": market["game_id"].to_numpy()[m],
            "game_date": market["game_date"].to_numpy()[m],
            "book": np.array(odds.BOOK_NAMES, dtype=object)[oa["b"]],
            "line": oa["line"],
            "over_price": oa["over"],
            "under_price": oa["under"],
            "snapshot_ts": pd.to_datetime(oa["t"], unit="s", utc=True),
            "source_api": np.array(odds.SOURCE_API, dtype=object)[oa["b"]],
        }
    )


def _frames(sd: engine.SeasonData, odds_df: pd.DataFrame, feats: pd.DataFrame) -> dict[str, pd.DataFrame]:
    sched = sd.schedule.copy()
    sched["tipoff_utc"] = pd.to_datetime(sched["tip"], unit="s", utc=True)
    sched["event_ts"] = pd.to_datetime(sched["event_ts"], unit="s", utc=True)
    sched = sched.sort_values(["game_date", "event_ts", "game_id", "status"], kind="stable")
    schedule = sched[list(ScheduleEvent._fields)].reset_index(drop=True)
    schedule["new_game_date"] = (
        schedule["new_game_date"].astype(object).where(schedule["new_game_date"].notna(), None)
    )

    inj = sd.injuries.copy()
    inj["report_ts"] = pd.to_datetime(inj["report_ts"], unit="s", utc=True)
    inj = inj.sort_values(["game_date", "report_ts", "player_lookup"], kind="stable")
    injuries = inj[list(InjuryReport._fields)].reset_index(drop=True)

    box = sd.box.sort_values(["game_date", "game_id", "team_abbr", "player_lookup"], kind="stable")
    box_scores = box[list(BoxScore._fields)].reset_index(drop=True)

    fv = np.array([[np.nan if v is None else v for v in t] for t in feats["features"]], dtype=np.float64)
    fdf = feats[
        ["player_lookup", "game_id", "game_date", "team_abbr", "opponent_team_abbr", "feature_version"]
    ].copy()
    fdf = pd.concat([fdf, pd.DataFrame(fv, columns=list(FEATURE_NAMES), index=fdf.index)], axis=1)
    for c in (
        "feature_quality_score",
        "quality_alert_level",
        "matchup_quality_pct",
        "required_default_count",
        "default_feature_indices",
        "prev_game_closing_line",
    ):
        fdf[c] = feats[c]
    fdf["prev_game_closing_line"] = fdf["prev_game_closing_line"].astype(float)
    fdf = fdf.sort_values(["game_date", "game_id", "team_abbr", "player_lookup"], kind="stable").reset_index(
        drop=True
    )
    return {
        "schedule": schedule,
        "odds": odds_df,
        "injuries": injuries,
        "features": fdf,
        "box_scores": box_scores,
    }


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

TS = pa.timestamp("us", tz="UTC")


def _odds_schema() -> pa.Schema:
    return pa.schema(
        [
            ("player_lookup", pa.string()),
            ("player_name", pa.string()),
            ("game_id", pa.string()),
            ("game_date", pa.date32()),
            ("book", pa.string()),
            ("line", pa.float64()),
            ("over_price", pa.int64()),
            ("under_price", pa.int64()),
            ("snapshot_ts", TS),
            ("source_api", pa.string()),
        ]
    )


def _features_schema() -> pa.Schema:
    fields = [
        ("player_lookup", pa.string()),
        ("game_id", pa.string()),
        ("game_date", pa.date32()),
        ("team_abbr", pa.string()),
        ("opponent_team_abbr", pa.string()),
        ("feature_version", pa.string()),
    ]
    fields += [(n, pa.float64()) for n in FEATURE_NAMES]
    fields += [
        ("feature_quality_score", pa.float64()),
        ("quality_alert_level", pa.string()),
        ("matchup_quality_pct", pa.float64()),
        ("required_default_count", pa.int64()),
        ("default_feature_indices", pa.list_(pa.int64())),
        ("prev_game_closing_line", pa.float64()),
    ]
    return pa.schema(fields)


def _json_value(v):
    v = _none(v)
    if v is None:
        return None
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, dt.datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating | float):
        return float(v)
    return v


def _write_jsonl(df: pd.DataFrame, path: Path) -> None:
    cols = list(df.columns)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for rec in df.itertuples(index=False, name=None):
            fh.write(json.dumps({c: _json_value(v) for c, v in zip(cols, rec, strict=True)}) + "\n")


def _write_parquet(df: pd.DataFrame, schema: pa.Schema, path: Path) -> None:
    arrays = []
    for f in schema:
        col = df[f.name]
        if pa.types.is_timestamp(f.type):
            arrays.append(
                pa.array(col.to_numpy(dtype="datetime64[us]"), type=pa.timestamp("us")).cast(f.type)
            )
        elif pa.types.is_list(f.type):
            arrays.append(pa.array([list(x) for x in col], type=f.type))
        elif f.type == pa.date32():
            arrays.append(pa.array(list(col), type=f.type))
        elif pa.types.is_floating(f.type):
            arrays.append(pa.array(col.to_numpy(dtype=np.float64), type=f.type, from_pandas=True))
        else:
            arrays.append(pa.array(col.tolist() if col.dtype == object else col.to_numpy(), type=f.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    pq.write_table(table, path, compression="zstd", store_schema=False, write_statistics=True)


def write_season(sim: Simulation, out: Path, progress=None) -> Path:
    """Writes the five kinds partitioned by game_date and ``manifest.json``; replaces existing kinds."""
    out.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        if (out / kind).exists():
            shutil.rmtree(out / kind)
    schemas = {"odds": _odds_schema(), "features": _features_schema()}
    for kind in KINDS:
        df = sim.frames[kind]
        for d, part in df.groupby("game_date", sort=True):
            folder = out / kind / f"game_date={d.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            if kind in schemas:
                _write_parquet(part, schemas[kind], folder / "part-00000.parquet")
            else:
                _write_jsonl(part, folder / "part-00000.jsonl")
        if progress:
            progress(f"wrote {kind}: {len(df)} rows")
    manifest = dict(sim.meta)
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return out


def read_season(path: str | os.PathLike) -> Simulation:
    """Reads a written season back into a :class:`Simulation` (frames only)."""
    path = Path(path)
    meta = json.loads((path / "manifest.json").read_text())
    frames = {}
    for kind in KINDS:
        files = sorted((path / kind).glob("game_date=*/part-*"))
        parts = []
        for f in files:
            if f.suffix == ".parquet":
                parts.append(pq.read_table(f).to_pandas())
            else:
                parts.append(pd.read_json(f, lines=True, dtype=False))
        df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        for c in ("game_date", "new_game_date"):
            if c in df.columns:
                df[c] = df[c].map(
                    lambda v: (
                        None
                        if _none(v) is None
                        else (v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)[:10]))
                    )
                )
        for c in ("tipoff_utc", "event_ts", "report_ts", "snapshot_ts"):
            if c in df.columns:
                df[c] = pd.to_datetime(df[c], utc=True)
        frames[kind] = df
    return Simulation(frames, meta)


def ensure_season(path: str | os.PathLike, season: str = "2025-26", seed: int = 42, progress=None) -> Path:
    """Generates the season at ``path`` unless its manifest matches (season, seed, generator version)."""
    path = Path(path)
    mf = path / "manifest.json"
    if mf.exists():
        try:
            meta = json.loads(mf.read_text())
        except ValueError:
            meta = {}
        if (
            meta.get("generator_version") == GENERATOR_VERSION
            and meta.get("season") == season
            and meta.get("seed") == seed
        ):
            return path
    sim = simulate(seed=seed, season=season, progress=progress)
    return sim.write(path, progress=progress)
