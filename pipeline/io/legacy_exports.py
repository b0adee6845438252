"""The old website's files (issue #11 item 2): ``best-bets/all.json``, ``best-bets/record.json``,
``best-bets/today.json`` and ``status.json`` in the old Cloud Run system's structure (legacy.md section 2).

Built only from the committed warehouse tables (``best_bets``, ``best_bets_results``, ``predictions``,
``runs``), so the files are the same whether written after ``props run``, after ``props grade`` or again
later (idempotent). The old units are kept: ``pct`` is a percent with one decimal, ``edge`` a magnitude
in points with one decimal, ``stat`` is always ``"PTS"``, timestamps are ISO-8601 with ``+00:00``.

    docs = legacy_documents(picks, results, game_date=d, generated_at=now, algorithm_version="v1")
    write_legacy_exports(warehouse, "gs://bucket/v1", d, algorithm_version=policy.version)

Choices where the old contract is silent (also in notes/h-legacy.md): the season window is this
project's season (``domain.calendar.season_bounds``: 1 August), not the old 1 November start; a push
(``result`` null) counts as neither graded nor pending; a day with no W/L and nothing pending is
``void`` when every pick was voided, otherwise ``split``; ``live_data`` and ``tonight_data`` in
``status.json`` are ``unknown`` (this pipeline writes no live files) and are left out of the rollup, as
is ``best_bets`` (as in the old system); ``active_break`` is null.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipeline.domain.calendar import season_bounds
from pipeline.options import DataOptions, LegacyOptions, OptionsError

LEGACY_FILES: tuple[str, ...] = (
    "best-bets/all.json", "best-bets/record.json", "best-bets/today.json", "status.json",
)
# Cache-Control per file, as the old exporters set it (legacy.md section 2).
LEGACY_CACHE_CONTROL: dict[str, str] = {
    "best-bets/all.json": "public, max-age=300",
    "best-bets/record.json": "public, max-age=300",
    "best-bets/today.json": "public, max-age=300",
    "status.json": "public, max-age=60",
}
LAST_N = 10


class LegacyExportsError(OptionsError):
    """A --legacy-exports location that must not be used (it would overwrite our own exports)."""


# -- locations ---------------------------------------------------------------------------------------


def _norm_prefix(uri: str) -> str:
    if "://" in uri:
        return uri.rstrip("/") + "/"
    return os.path.abspath(uri).rstrip("/") + "/"


def check_prefixes(exports: str | None, legacy_exports: str | None) -> None:
    """Refuses a ``--legacy-exports`` equal to ``--exports`` or one inside the other (their files share
    names such as ``best-bets/record.json`` with other shapes)."""
    if not legacy_exports or not exports:
        return
    a, b = _norm_prefix(exports), _norm_prefix(legacy_exports)
    if a.startswith(b) or b.startswith(a):
        raise LegacyExportsError(
            f"--legacy-exports {legacy_exports} and --exports {exports} overlap (same prefix or one inside "
            "the other); the old website's files would overwrite ours or the reverse. Use separate "
            "prefixes, e.g. --exports gs://BUCKET/props --legacy-exports gs://BUCKET/v1")


# -- small pure helpers ------------------------------------------------------------------------------


def iso_utc(ts: dt.datetime | None) -> str | None:
    """ISO-8601 with ``+00:00`` (the old files' form), microseconds kept; None stays None."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return ts.astimezone(dt.UTC).isoformat()


def pct(wins: int, total: int, *, empty: float | None) -> float | None:
    """Win percentage with one decimal; ``empty`` when nothing is graded (0.0 or null by file)."""
    return round(100.0 * wins / total, 1) if total else empty


def _record(results: Sequence[str | None], *, empty: float | None = 0.0) -> dict[str, Any]:
    wins = sum(1 for r in results if r == "WIN")
    losses = sum(1 for r in results if r == "LOSS")
    total = wins + losses
    return {"wins": wins, "losses": losses, "total": total, "pct": pct(wins, total, empty=empty)}


def legacy_result(result: str | None) -> str | None:
    """Our result -> the old one: WIN/LOSS/VOID stay, PUSH and PENDING (or no result) become null."""
    return result if result in ("WIN", "LOSS", "VOID") else None


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _list(value: Any) -> list:
    if value is None:
        return []
    try:
        return list(value)
    except TypeError:
        return []


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _ts(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if hasattr(value, "to_pydatetime"):
        if str(value) == "NaT":
            return None
        return _ts(value.to_pydatetime())
    return None


# -- per-pick shapes ---------------------------------------------------------------------------------


def _joined(picks: Iterable[Mapping[str, Any]], results: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Active and locked picks with their result (one per pick_id), newest date first, then rank."""
    by_id = {r["pick_id"]: r for r in results}
    out = []
    for p in picks:
        if p.get("status") == "withdrawn":
            continue
        r = by_id.get(p["pick_id"], {})
        out.append({**p, "game_date": _date(p["game_date"]), "_result": legacy_result(r.get("result")),
                    "_actual": _num(r.get("actual_points")), "_void_reason": r.get("void_reason")})
    out.sort(key=lambda p: (-p["game_date"].toordinal(), int(p["rank"]),
                            -abs(_num(p["consensus_edge"]) or 0)))
    return out


def _pick(p: Mapping[str, Any], *, today: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if today:
        doc["rank"] = int(p["rank"])
    edge = _num(p.get("consensus_edge"))
    doc |= {
        "player": p.get("player_name") or p["player_lookup"],
        "player_lookup": p["player_lookup"],
        "team": p.get("team_abbr"),
        "opponent": p.get("opponent_team_abbr"),
        "direction": p["direction"],
        "stat": "PTS",
        "line": round(float(p["line"]), 1),
        "edge": round(abs(edge), 1) if edge is not None else None,
    }
    if today:
        doc["game_time"] = iso_utc(_ts(p.get("tipoff_utc")))
    doc["angles"] = [str(a) for a in _list(p.get("pick_angles"))[:3]]
    actual = p.get("_actual")
    doc["actual"] = int(round(actual)) if actual is not None else None
    doc["result"] = p.get("_result")
    if p.get("_result") == "VOID":
        doc["void_reason"] = p.get("_void_reason") or "DNP"
    if bool(p.get("ultra_tier")):
        doc["ultra_tier"] = True
    return doc


def _today_pick(p: Mapping[str, Any]) -> dict[str, Any]:
    """today.json's pick: rank, player, player_lookup, team, opponent, direction, line, edge, angles."""
    full = _pick(p, today=True)
    keys = ("rank", "player", "player_lookup", "team", "opponent", "direction", "line", "edge", "angles")
    return {k: full[k] for k in keys}


# -- records -----------------------------------------------------------------------------------------


def _streaks(graded: Sequence[Mapping[str, Any]]) -> tuple[dict, dict]:
    """(streak, best_streak) over graded picks given newest first."""
    streak = {"type": "N/A", "count": 0}
    if graded:
        first = graded[0]["_result"]
        n = 0
        for p in graded:
            if p["_result"] != first:
                break
            n += 1
        streak = {"type": "W" if first == "WIN" else "L", "count": n}
    best = {"type": "N/A", "count": 0, "start": None, "end": None}
    run: list[Mapping[str, Any]] = []
    for p in reversed(graded):  # oldest first
        if p["_result"] == "WIN":
            run.append(p)
            if len(run) > best["count"]:
                best = {"type": "W", "count": len(run), "start": run[0]["game_date"].isoformat(),
                        "end": run[-1]["game_date"].isoformat()}
        else:
            run = []
    return streak, best


def _records(joined: Sequence[Mapping[str, Any]], game_date: dt.date) -> dict[str, Any]:
    graded = [p for p in joined if p["_result"] in ("WIN", "LOSS")]
    month_start = game_date.replace(day=1)
    week_start = game_date - dt.timedelta(days=game_date.weekday())
    last = [p["_result"] for p in graded[:LAST_N]]
    last_rec = _record(last)
    return {
        "season": _record([p["_result"] for p in graded]),
        "month": _record([p["_result"] for p in graded if p["game_date"] >= month_start]),
        "week": _record([p["_result"] for p in graded if p["game_date"] >= week_start]),
        "last_10": {"wins": last_rec["wins"], "losses": last_rec["losses"], "pct": last_rec["pct"]},
    }


def _ultra_record(joined: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ultra = [p for p in joined if bool(p.get("ultra_tier")) and p["_result"] in ("WIN", "LOSS")]
    doc = _record([p["_result"] for p in ultra], empty=None)
    for side, direction in (("over", "OVER"), ("under", "UNDER")):
        doc[side] = _record([p["_result"] for p in ultra if p["direction"] == direction], empty=None)
    return doc


def _day_status(wins: int, losses: int, pending: int, voided: int, n: int) -> str:
    if n and voided == n:
        return "void"
    if pending:
        return "pending"
    if wins + losses == 0:
        return "split"
    if losses == 0:
        return "sweep"
    if wins == 0:
        return "miss"
    return "split"


def _weeks(joined: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by_day: dict[dt.date, list[Mapping[str, Any]]] = {}
    for p in joined:
        by_day.setdefault(p["game_date"], []).append(p)
    weeks: dict[dt.date, list[dict[str, Any]]] = {}
    week_counts: dict[dt.date, list[int]] = {}
    for day in sorted(by_day, reverse=True):
        picks = by_day[day]
        wins = sum(p["_result"] == "WIN" for p in picks)
        losses = sum(p["_result"] == "LOSS" for p in picks)
        voided = sum(p["_result"] == "VOID" for p in picks)
        # Pending: no result yet (a graded push has a PUSH result in best_bets_results and is not pending).
        pending = sum(p["_result"] is None and not p.get("_push") for p in picks)
        record: dict[str, Any] = {"wins": wins, "losses": losses, "pending": pending}
        if voided:
            record["voided"] = voided
        monday = day - dt.timedelta(days=day.weekday())
        weeks.setdefault(monday, []).append({
            "date": day.isoformat(), "status": _day_status(wins, losses, pending, voided, len(picks)),
            "record": record, "picks": [_pick(p, today=False) for p in picks],
        })
        c = week_counts.setdefault(monday, [0, 0, 0])
        c[0] += wins
        c[1] += losses
        c[2] += pending
    return [
        {"week_start": monday.isoformat(),
         "record": {"wins": week_counts[monday][0], "losses": week_counts[monday][1],
                    "pending": week_counts[monday][2],
                    "pct": pct(week_counts[monday][0], week_counts[monday][0] + week_counts[monday][1],
                               empty=None)},
         "days": days}
        for monday, days in sorted(weeks.items(), reverse=True)
    ]


# -- the documents -----------------------------------------------------------------------------------


def legacy_documents(
    picks: Iterable[Mapping[str, Any]],
    results: Iterable[Mapping[str, Any]],
    *,
    game_date: dt.date,
    generated_at: dt.datetime,
    algorithm_version: str,
    status: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The four legacy documents (path -> document) for ``game_date`` from the season's rows.

    ``picks``: ``best_bets`` rows (dicts) of the season up to ``game_date``; ``results``: their
    ``best_bets_results`` rows; ``status``: the ``status.json`` document (from :func:`status_document`).
    """
    results = list(results)
    pushes = {r["pick_id"] for r in results if r.get("result") == "PUSH"}
    start, _end, season = season_bounds(game_date)
    joined = [p for p in _joined(picks, results) if start <= p["game_date"] <= game_date]
    for p in joined:
        p["_push"] = p["pick_id"] in pushes
    today = sorted((p for p in joined if p["game_date"] == game_date), key=lambda p: int(p["rank"]))
    graded = [p for p in joined if p["_result"] in ("WIN", "LOSS")]
    voided = sum(p["_result"] == "VOID" for p in joined)
    record = _records(joined, game_date)
    streak, best_streak = _streaks(graded)
    generated = iso_utc(generated_at)
    all_doc: dict[str, Any] = {
        "date": game_date.isoformat(),
        "season": season,
        "generated_at": generated,
        "algorithm_version": algorithm_version,
        "record": record,
        "ultra_record": _ultra_record(joined),
        "streak": streak,
        "best_streak": best_streak,
        "today": [_pick(p, today=True) for p in today],
        "total_today": len(today),
        "weeks": _weeks(joined),
        "total_picks": len(joined) - voided,
        "graded": len(graded),
    }
    if voided:
        all_doc["voided"] = voided
    record_doc = {"date": game_date.isoformat(), "generated_at": generated,
                  "algorithm_version": algorithm_version, "record": record, "streak": streak,
                  "best_streak": best_streak}
    today_doc = {"date": game_date.isoformat(), "season": season, "generated_at": generated,
                 "algorithm_version": algorithm_version, "record": record,
                 "picks": [_today_pick(p) for p in today], "total_picks": len(today)}
    docs = {"best-bets/all.json": all_doc, "best-bets/record.json": record_doc,
            "best-bets/today.json": today_doc}
    if status is not None:
        docs["status.json"] = dict(status)
    return docs


def _service(status: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": status, "message": message, **extra}


def status_document(
    *,
    game_date: dt.date,
    now: dt.datetime,
    runs: Iterable[Mapping[str, Any]],
    predictions_count: int,
    total_picks: int,
) -> dict[str, Any]:
    """``status.json`` from the ``runs`` table and the date's counts (legacy.md section 2.3)."""
    runs = [r for r in runs if r.get("status") in ("succeeded", "failed")]

    def latest(command: str, status: str | None = None) -> Mapping[str, Any] | None:
        rows = [r for r in runs if r.get("command") == command
                and (status is None or r.get("status") == status) and _ts(r.get("finished_at")) is not None]
        return max(rows, key=lambda r: _ts(r["finished_at"]), default=None)

    grade = latest("grade")
    if grade is None:
        grading = _service("unknown", "no grading run recorded", last_update=None)
    elif grade["status"] == "succeeded":
        grading = _service("healthy", "last grading run succeeded",
                           last_update=iso_utc(_ts(grade["finished_at"])))
    else:
        grading = _service("unhealthy", "last grading run failed",
                           last_update=iso_utc(_ts(grade["finished_at"])))
    slate = latest("run")
    slate_ok = latest("run", "succeeded")
    if slate is None:
        preds = _service("unknown", "no slate run recorded", predictions_count=predictions_count,
                         target_date=game_date.isoformat())
    else:
        ok = slate["status"] == "succeeded"
        preds = _service("healthy" if ok else "unhealthy",
                         "last slate run succeeded" if ok else "last slate run failed",
                         predictions_count=predictions_count, target_date=game_date.isoformat())
    last_pick_update = _ts(slate_ok["finished_at"]) if slate_ok else None
    if last_pick_update is None:
        bb = _service("unknown", "no best bets written", total_picks=total_picks, last_update=None)
    else:
        from pipeline.domain.calendar import eastern_date

        fresh = eastern_date(last_pick_update) == eastern_date(now)
        bb = _service("healthy" if fresh else "degraded",
                      "best bets updated today" if fresh else "best bets not updated today (US Eastern)",
                      total_picks=total_picks, last_update=iso_utc(last_pick_update))
    not_ours = "not produced by this pipeline"
    services = {
        "live_data": _service("unknown", not_ours, last_update=None, age_minutes=None, is_stale=None,
                              games_active=None, next_update_expected=None),
        "tonight_data": _service("unknown", not_ours, last_update=None, age_minutes=None, is_stale=None),
        "grading": grading,
        "predictions": preds,
        "best_bets": bb,
    }
    rolled = [grading["status"], preds["status"]]
    overall = ("unhealthy" if "unhealthy" in rolled else
               "degraded" if ("degraded" in rolled or "unknown" in rolled) else "healthy")
    issues = [{"severity": "error" if s["status"] == "unhealthy" else "warning",
               "message": f"{name}: {s['message']}", "detected_at": iso_utc(now)}
              for name, s in (("grading", grading), ("predictions", preds), ("best_bets", bb))
              if s["status"] in ("unhealthy", "degraded")]
    return {"updated_at": iso_utc(now), "overall_status": overall, "services": services,
            "known_issues": issues, "maintenance_windows": [], "active_break": None}


# -- reading the warehouse and writing ---------------------------------------------------------------


def _records_of(frame) -> list[dict[str, Any]]:
    """Rows of a warehouse DataFrame as dicts, pandas' missing markers (NaN, NaT, NA) as None."""
    import pandas as pd

    if frame is None or len(frame) == 0:
        return []
    rows = frame.to_dict("records")
    for r in rows:
        for k, v in list(r.items()):
            if v is None or isinstance(v, (str, list, tuple)) or hasattr(v, "__len__"):
                continue
            if pd.isna(v):
                r[k] = None
    return rows


def build_from_warehouse(warehouse, game_date: dt.date, *, algorithm_version: str,
                         now: dt.datetime | None = None) -> dict[str, dict[str, Any]]:
    """The four documents of ``game_date`` read from the committed warehouse tables."""
    now = now or dt.datetime.now(dt.UTC)
    start = season_bounds(game_date)[0]
    dates = [start + dt.timedelta(days=i) for i in range((game_date - start).days + 1)]
    picks = _records_of(warehouse.read_table("best_bets", dates))
    results = _records_of(warehouse.read_table("best_bets_results", dates))
    preds = _records_of(warehouse.read_table("predictions", [game_date]))
    runs = _records_of(warehouse.read_table("runs"))
    today_picks = [p for p in picks if _date(p["game_date"]) == game_date and p.get("status") != "withdrawn"]
    status = status_document(game_date=game_date, now=now, runs=runs,
                             predictions_count=len({(p["player_lookup"], p["game_id"]) for p in preds}),
                             total_picks=len(today_picks))
    return legacy_documents(picks, results, game_date=game_date, generated_at=now,
                            algorithm_version=algorithm_version, status=status)


def write_legacy_exports(warehouse, prefix: str, game_date: dt.date, *, algorithm_version: str,
                         now: dt.datetime | None = None) -> list[str]:
    """Builds and writes the four legacy files under ``prefix`` (folder or gs://BUCKET/v1); returns URIs."""
    from pipeline.io.exports import write_json

    docs = build_from_warehouse(warehouse, game_date, algorithm_version=algorithm_version, now=now)
    written = []
    for path, doc in docs.items():
        uri = (prefix.rstrip("/") + "/" + path) if "://" in prefix else os.path.join(prefix, path)
        if "://" not in uri:
            os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
        written.append(write_json(uri, doc, cache_control=LEGACY_CACHE_CONTROL[path]))
    return written


# -- the hooks of ``props run`` / ``props grade`` ----------------------------------------------------


def check_options(options) -> None:
    """Launch check (preflight): raises LegacyExportsError when --legacy-exports overlaps --exports."""
    check_prefixes(options.view_as(DataOptions).exports, options.view_as(LegacyOptions).legacy_exports)


def after_commit(options, warehouse, dates: Sequence[dt.date], *, algorithm_version: str) -> list[str]:
    """Writes the legacy files for the last date of a committed run when --legacy-exports is set."""
    prefix = options.view_as(LegacyOptions).legacy_exports
    if not prefix or not dates:
        return []
    written = write_legacy_exports(warehouse, prefix, max(dates), algorithm_version=algorithm_version)
    print(f"legacy exports {prefix}: {len(written)} files for {max(dates)}")
    return written
