"""``props grade`` (pipeline.commands.grade) on a tiny warehouse and input folder built inline."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from pipeline.commands import grade
from pipeline.io.exports import best_bets_document, write_json
from pipeline.io.warehouse import open_warehouse
from pipeline.policy import Policy
from pipeline.schemas import Pick, Prediction, RunRecord

D = dt.date(2026, 2, 22)
GAME = "20260222_LAL_BOS"
TIP = dt.datetime(2026, 2, 23, 0, 30, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _anonymous_gcp(monkeypatch):
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), None))


def _iso(ts: dt.datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _write(root: Path, kind: str, lines: list[str]) -> None:
    folder = root / kind / f"game_date={D.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-00000.jsonl").write_text("\n".join(lines) + "\n")


def _inputs(root: Path) -> str:
    box = lambda p, pts, mins, dnp: json.dumps({  # noqa: E731
        "player_lookup": p, "game_id": GAME, "game_date": D.isoformat(), "team_abbr": "LAL", "points": pts,
        "minutes": mins, "is_dnp": dnp, "starter": True, "plus_minus": 1.0})
    _write(root, "box_scores", [box("aa", 25, 34.0, False), box("bb", 0, 0.0, True),
                                box("cc", 20, 30.0, False), box("dd", 0, 12.0, False),
                                '{"player_lookup": "broken"'])
    _write(root, "injuries", [json.dumps({
        "player_lookup": "bb", "game_date": D.isoformat(), "status": "OUT", "reason": "ankle",
        "report_ts": _iso(TIP - dt.timedelta(hours=3))})])
    _write(root, "odds", [json.dumps({
        "player_lookup": p, "player_name": p, "game_id": GAME, "game_date": D.isoformat(),
        "book": "draftkings", "line": line, "over_price": -110, "under_price": -110,
        "snapshot_ts": _iso(TIP - dt.timedelta(minutes=10)), "source_api": "odds_api"})
        for p, line in (("aa", 21.5), ("bb", 10.5), ("cc", 19.5))])
    _write(root, "schedule", [json.dumps({
        "game_id": GAME, "game_date": D.isoformat(), "tipoff_utc": _iso(TIP), "home_team": "BOS",
        "away_team": "LAL", "status": "final", "new_game_date": None, "event_ts": _iso(TIP)})])
    return str(root)


def _pred(player, rec, line, predicted, model="m1", family="v12_mae") -> Prediction:
    edge = None if line is None else round(predicted - line, 1)
    return Prediction(D, GAME, player, model, family, "v12", predicted, line, "draftkings",
                      TIP - dt.timedelta(hours=1), edge, rec, 0.8, run_id="run-x")


def _pick(player, direction, line, rank, ultra=False) -> Pick:
    return Pick(f"pk-{player}", D, GAME, player, player.upper(), "LAL", "BOS", TIP, rank, direction, line,
                "draftkings", None, 6.0, 26.0, 0.8, 5, 8, 1.0, 0.8, ("m1",), ("high_edge",), "{}", "{}", (),
                ultra, "{}", "active", 1, run_id="run-x")


PREDS = [_pred("aa", "OVER", 20.5, 26.0), _pred("bb", "UNDER", 10.5, 5.0), _pred("cc", "UNDER", 20.0, 15.0),
         _pred("dd", "OVER", 5.5, 9.6), _pred("aa", "HOLD", 20.5, 21.0, model="m2", family="v9_mae"),
         _pred("ee", "NO_LINE", None, 10.0)]
PICKS = [_pick("aa", "OVER", 20.5, 1, ultra=True), _pick("bb", "UNDER", 10.5, 2),
         _pick("cc", "UNDER", 20.0, 3), _pick("dd", "OVER", 5.5, 4)]


def _setup(tmp_path: Path) -> tuple[str, str, str]:
    inputs = _inputs(tmp_path / "inputs")
    uri = f"duckdb://{tmp_path / 'w.duckdb'}"
    wh = open_warehouse(uri)
    wh.replace_dates([D], {"predictions": PREDS, "best_bets": PICKS}, tables=["predictions", "best_bets"])
    wh.insert_run(RunRecord("run-x", "run", "{}", "p1", None, TIP - dt.timedelta(hours=2), TIP, "succeeded",
                            "{}", D))  # the picks' run: a live `props run`
    exports = str(tmp_path / "exports")
    doc = best_bets_document(D, PICKS, None, generated_at=TIP - dt.timedelta(hours=1), policy_version="p1",
                             record=None, ultra_public=False, consensus=None)
    write_json(f"{exports}/best-bets/{D}.json", doc)
    write_json(f"{exports}/best-bets/latest.json", doc)
    return inputs, uri, exports


def test_grade_writes_tables_and_exports_that_agree_and_is_idempotent(tmp_path, capsys):
    inputs, uri, exports = _setup(tmp_path)
    argv = ["--date", D.isoformat(), "--inputs", inputs, "--warehouse", uri, "--exports", exports]
    assert grade.main(argv) == 0
    out = capsys.readouterr().out
    assert "picks graded 1-1-1-1 W-L-P-V" in out and "predictions graded 6 (no line 1; pending 0)" in out

    wh = open_warehouse(uri)
    results = {r["pick_id"]: r for r in wh.query("SELECT * FROM best_bets_results")}
    assert {k: r["result"] for k, r in results.items()} == {
        "pk-aa": "WIN", "pk-bb": "VOID", "pk-cc": "PUSH", "pk-dd": "LOSS"}
    assert results["pk-bb"]["void_reason"] == "dnp_injury_confirmed"
    assert results["pk-aa"]["closing_line"] == 21.5 and results["pk-aa"]["clv"] == 1.0
    acc = wh.query("SELECT * FROM prediction_accuracy ORDER BY player_lookup, model_id")
    assert len(acc) == 6  # NO_LINE graded too: no box score row in a played game -> void
    ee = next(a for a in acc if a["player_lookup"] == "ee")
    assert (ee["recommendation"], ee["is_voided"], ee["void_reason"]) == ("NO_LINE", True, "dnp_unknown")
    assert ee["prediction_correct"] is None and ee["edge_correct"] is None
    assert {a["player_lookup"]: a["edge_correct"] for a in acc if a["model_id"] == "m1"} == {
        "aa": True, "bb": None, "cc": None, "dd": False, "ee": None}
    perf = wh.query("SELECT * FROM model_performance_daily ORDER BY model_id")
    assert [(p["model_id"], p["n_7d"], p["state"]) for p in perf] == [
        ("m1", 2, "INSUFFICIENT_DATA"), ("m2", 0, "INSUFFICIENT_DATA")]
    assert wh.query("SELECT count(*) AS n FROM dead_letters")[0]["n"] == 1

    record = json.loads(Path(exports, "best-bets/record.json").read_text())
    assert record["season"]["record"] == "1-1" and record["season"]["pushes"] == 1
    assert record["season"]["voids"] == 1 and record["ultra"]["all"]["record"] == "1-0"
    day = json.loads(Path(exports, f"best-bets/{D}.json").read_text())
    assert {p["pick_id"]: p["result"] for p in day["picks"]} == {k: r["result"] for k, r in results.items()}
    assert {p["pick_id"]: p["actual_points"] for p in day["picks"]}["pk-aa"] == 25
    assert day["record"] == record and "ultra_tier" not in day["picks"][0]
    assert json.loads(Path(exports, "best-bets/latest.json").read_text()) == day
    perf_doc = json.loads(Path(exports, "models/performance.json").read_text())
    assert [m["model_id"] for m in perf_doc["models"]] == ["m1", "m2"]

    def snapshot():
        rows = {}
        for t in grade.GRADING_TABLES + ("dead_letters",):
            rows[t] = sorted(tuple(sorted((k, str(v)) for k, v in r.items() if k != "run_id"))
                             for r in wh.query(f'SELECT * FROM "{t}"'))
        return rows

    before = snapshot()
    assert grade.main(argv) == 0
    assert snapshot() == before  # grading twice: identical rows, no duplicates


def test_grade_dates_pending_when_the_game_has_no_box_scores(tmp_path):
    inputs, uri, _ = _setup(tmp_path)
    for f in Path(inputs, "box_scores").rglob("*.jsonl"):
        f.unlink()
    outcome = grade.grade_dates(open_warehouse(uri), inputs, None, [D], policy=Policy(), run_id="r")
    assert outcome.accuracy == [] and outcome.counts["pending_predictions"] == 6
    assert {r.result for r in outcome.results} == {"PENDING"}


@pytest.mark.parametrize("argv,message", [
    (["--date", "2026-02-30"], "--date"),
    (["--date", "22/02/2026"], "YYYY-MM-DD"),
    (["--start", "2026-02-01"], "required"),
    (["--start", "2026-02-10", "--end", "2026-02-01"], "before"),
    (["--date", "2026-02-01", "--start", "2026-02-01", "--end", "2026-02-02"], "not both"),
])
def test_bad_options_exit_2_with_the_message(argv, message, capsys, tmp_path):
    extra = ["--warehouse", f"duckdb://{tmp_path / 'w.duckdb'}", "--inputs", str(tmp_path)]
    assert grade.main(argv + extra) == 2
    assert message in capsys.readouterr().err


def test_record_as_of_never_rolls_back_to_an_earlier_regraded_date():
    from pipeline.schemas import BestBetResult

    def res(day, result):
        return BestBetResult("p", day, GAME, "aa", "OVER", 20.5, 6.0, None, None, result, None, None, None,
                             None, False)

    later = [res(D + dt.timedelta(days=5), "WIN"), res(D + dt.timedelta(days=9), "PENDING")]
    assert grade.record_as_of(later, D) == D + dt.timedelta(days=5)
    assert grade.record_as_of([], D) == D
