"""Old models in (issue #11 item 3): old ``model_registry`` rows import into our registry and score.

The artifacts are real CatBoost models trained here the way the old system trains them (a DataFrame with
the feature store's column names, MAE or Quantile loss), saved under the old file names; the rows are a
``bq query --format=json`` style export (BOOL and numbers as strings). The imported registry then serves
``props run`` on a small simulated slate, and its legacy website files validate against the old contract.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from catboost import CatBoostRegressor

import sim
from models.handler import handler_for
from models.registry import load_registry
from models.synthetic import synthetic_frame
from pipeline.commands import grade as grade_command
from pipeline.commands import legacy as legacy_command
from pipeline.commands import run as run_command
from pipeline.io.legacy import LegacyRowError, legacy_family, registry_spec_from_legacy
from pipeline.schemas import FEATURE_NAMES, feature_names_for
from tests.test_legacy_exports import validator_for

GAME_DATE = "2026-01-13"
GCS = "gs://nba-props-platform-models/catboost"


def _train_old_style(path: Path, feature_set: str, loss: str) -> None:
    frame = synthetic_frame(dt.date(2025, 11, 1), 20, players=30, seed=5)
    names = list(feature_names_for(feature_set))
    model = CatBoostRegressor(iterations=15, depth=3, loss_function=loss, verbose=False, thread_count=1,
                              random_seed=1)
    model.fit(frame[names], frame["points"])
    model.save_model(str(path))


def _row(model_id, version, gcs_path, count, family, feature_set, loss, alpha, status, enabled, **extra):
    row = {"model_id": model_id, "model_version": version, "model_type": "catboost", "gcs_path": gcs_path,
           "feature_count": str(count), "training_start_date": "2025-11-02",
           "training_end_date": "2025-12-31", "training_samples": "4123", "evaluation_mae": "4.91",
           "evaluation_hit_rate_edge_3plus": "61.2", "model_family": family, "feature_set": feature_set,
           "loss_function": loss, "quantile_alpha": alpha, "status": status, "is_production": "false",
           "enabled": enabled, "created_by": "quick_retrain"}
    row.update(extra)
    return row


@pytest.fixture(scope="module")
def old_models(tmp_path_factory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("old_models")
    files = {
        "catboost_v9_33f_train20251102-20251231_20260102_101500.cbm": ("v9", "MAE"),
        "catboost_v12_54f_q43_train20251102-20251231_20260102_101500.cbm": ("v12", "Quantile:alpha=0.43"),
        "catboost_v12_noveg_50f_train20251102-20251231_20260102_101500.cbm": ("v12_noveg", "MAE"),
    }
    for name, (fs, loss) in files.items():
        _train_old_style(folder / name, fs, loss)
    names = list(files)
    v12_features = json.dumps(list(feature_names_for("v12")))
    rows = [
        _row("catboost_v9_train1102_1231", "v9", f"{GCS}/v9/monthly/{names[0]}", 33, "v9_mae", "v9", "MAE",
             None, "active", "true"),
        # The old "v12_q43" is a quantile model on the full v12 set: our v12_vegas_q43.
        _row("catboost_v12_q43_train1102_1231", "v12", f"{GCS}/v12/monthly/{names[1]}", 54, "v12_q43", "v12",
             "Quantile:alpha=0.43", "0.43", "active", "true", features_json=v12_features),
        # Enabled but only testing in the old system: imported disabled.
        _row("catboost_v12_noveg_train1102_1231", "v12_noveg", f"{GCS}/v12/monthly/{names[2]}", 50,
             "v12_noveg_mae", "v12_noveg", "MAE", None, "testing", "true"),
        # Active but disabled: imported disabled.
        _row("catboost_v9_33features_20260102", "v9", f"{GCS}/v9/monthly/{names[0]}", 33, "v9_mae", "v9",
             "MAE", None, "active", "false"),
        # Not importable: its artifact is not there; another one's recorded hash does not match.
        _row("catboost_v9_q45_train1102_1231", "v9", f"{GCS}/v9/monthly/missing.cbm", 33, "v9_q45", "v9",
             "Quantile:alpha=0.45", "0.45", "active", "true"),
        _row("catboost_v9_tampered", "v9", f"{GCS}/v9/monthly/{names[0]}", 33, "v9_mae", "v9", "MAE", None,
             "active", "true", sha256_hash="0" * 64),
    ]
    return folder, rows


@pytest.fixture(scope="module")
def imported(old_models, tmp_path_factory):
    folder, rows = old_models
    work = tmp_path_factory.mktemp("imported")
    source = work / "model_registry.json"
    source.write_text(json.dumps(rows))
    out = work / "registry.json"
    code = legacy_command.main(["import-registry", "--source", str(source), "--out", str(out),
                                "--artifacts", str(folder)])
    return code, load_registry(str(out)).validate(), folder


def test_import_maps_families_enabled_and_hashes(imported):
    code, registry, folder = imported
    assert code == 1  # two rows not imported, and said so
    by_id = {m.model_id: m for m in registry.models}
    assert set(by_id) == {"catboost_v9_train1102_1231", "catboost_v12_q43_train1102_1231",
                          "catboost_v12_noveg_train1102_1231", "catboost_v9_33features_20260102"}
    assert by_id["catboost_v9_train1102_1231"].family == "v9_mae"
    q43 = by_id["catboost_v12_q43_train1102_1231"]
    assert (q43.family, q43.feature_set, q43.loss, q43.quantile_alpha) == (
        "v12_vegas_q43", "v12", "Quantile:alpha=0.43", 0.43)
    assert by_id["catboost_v12_noveg_train1102_1231"].family == "v12_noveg_mae"
    assert {m.model_id for m in registry.enabled()} == {"catboost_v9_train1102_1231",
                                                        "catboost_v12_q43_train1102_1231"}
    assert all(m.status == ("promoted" if m.enabled else "retired") for m in registry.models)
    for m in registry.models:
        assert m.sha256 == hashlib.sha256(Path(m.artifact_uri).read_bytes()).hexdigest()
        assert m.training_end == dt.date(2025, 12, 31)
        assert m.training_params["legacy"]["gcs_path"].startswith(GCS)


def test_rows_not_imported_are_named_with_their_reason(old_models, tmp_path):
    folder, rows = old_models
    source = tmp_path / "rows.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")  # bq extract: newline-delimited
    registry, problems = legacy_command.import_registry(str(source), str(tmp_path / "r.json"),
                                                        artifacts=str(folder))
    assert len(registry.models) == 4 and len(problems) == 2
    assert any("catboost_v9_q45_train1102_1231" in p and "unreadable" in p for p in problems)
    assert any("catboost_v9_tampered" in p and "sha256_hash" in p for p in problems)


def test_family_comes_from_the_fields_not_the_old_name():
    row = _row("catboost_v12_q43_x", "v12_noveg", "x.cbm", 50, "v12_q43", "v12_noveg", "Quantile:alpha=0.43",
               None, "active", "true")
    assert legacy_family(row) == "v12_noveg_q43"  # the old name says v12, the feature set says noveg
    low = _row("m", "v9", "x.cbm", 33, "v9_low_vegas", "v9", "MAE", None, "active", "true")
    assert legacy_family(low) == "v9_low_vegas"
    bad = _row("m", "v12", "x.cbm", 50, "v12_mae", "v12", "MAE", None, "active", "true")
    with pytest.raises(LegacyRowError, match="feature_count 50"):
        registry_spec_from_legacy(bad, artifact_uri="x.cbm", sha256="0" * 64)


def test_old_artifacts_score_through_our_handler_unchanged(imported):
    _code, registry, _folder = imported
    rng = np.random.default_rng(0)
    for spec in registry.models:
        handler = handler_for(spec, batch_size=None)
        model = handler.load_model()
        vectors = [rng.normal(10, 5, spec.feature_count).astype(np.float32) for _ in range(4)]
        got = [r.inference for r in handler.run_inference(list(zip("abcd", vectors, strict=True)), model)]
        direct = CatBoostRegressor()
        direct.load_model(spec.artifact_uri)
        assert got == pytest.approx(direct.predict(np.stack(vectors)).tolist())
        assert tuple(direct.feature_names_) == tuple(FEATURE_NAMES[i] for i in range(55)
                                                     if FEATURE_NAMES[i] in spec.feature_names)


@pytest.mark.slow
def test_props_run_scores_with_the_imported_registry(imported, tmp_path, capsys):
    _code, registry, _folder = imported
    season = tmp_path / "season"
    sim.simulate(seed=11, teams=("LAL", "BOS", "DEN", "MIA", "NYK", "PHX"), start="2026-01-10",
                 days=6).write(season)
    legacy_out = tmp_path / "v1"
    code = run_command.main(["--inputs", str(season), "--registry", registry.uri, "--game-date", GAME_DATE,
                             "--warehouse", str(tmp_path / "props.duckdb"), "--exports",
                             str(tmp_path / "exports"), "--legacy-exports", str(legacy_out)])
    out = capsys.readouterr().out
    assert code == 0, out
    con = duckdb.connect(str(tmp_path / "props.duckdb"), read_only=True)
    scored = dict(con.execute("SELECT model_id, count(*) FROM predictions GROUP BY model_id").fetchall())
    families = {r[0] for r in con.execute("SELECT DISTINCT family FROM predictions").fetchall()}
    con.close()
    assert set(scored) == {m.model_id for m in registry.enabled()} and min(scored.values()) > 0
    assert families == {"v9_mae", "v12_vegas_q43"}
    for path, schema in (("best-bets/all.json", "all.schema.json"), ("status.json", "status.schema.json"),
                         ("best-bets/today.json", "today.schema.json"),
                         ("best-bets/record.json", "record.schema.json")):
        doc = json.loads((legacy_out / path).read_text())
        assert validator_for(schema).is_valid(doc), path
    assert json.loads((legacy_out / "best-bets/all.json").read_text())["date"] == GAME_DATE

    # props grade writes them again from the graded tables.
    code = grade_command.main(["--inputs", str(season), "--date", GAME_DATE, "--warehouse",
                               str(tmp_path / "props.duckdb"), "--exports", str(tmp_path / "exports"),
                               "--legacy-exports", str(legacy_out)])
    assert code == 0, capsys.readouterr()
    con = duckdb.connect(str(tmp_path / "props.duckdb"), read_only=True)
    graded = con.execute(
        "SELECT count(*) FROM best_bets_results WHERE result IN ('WIN', 'LOSS')").fetchone()[0]
    con.close()
    doc = json.loads((legacy_out / "best-bets/all.json").read_text())
    assert validator_for("all.schema.json").is_valid(doc)
    assert doc["graded"] == graded == doc["record"]["season"]["total"]
    status = json.loads((legacy_out / "status.json").read_text())
    assert status["services"]["grading"]["status"] == "healthy"


def test_run_refuses_legacy_exports_inside_exports(tmp_path, capsys):
    code = run_command.main(["--exports", str(tmp_path / "exports"), "--legacy-exports",
                             str(tmp_path / "exports" / "v1"), "--dry-run"])
    assert code == 2
    assert "overlap" in capsys.readouterr().err


# The old table's column types (legacy.md section 3); JSON columns as JSON, dates as DATE.
REGISTRY_TYPES = {"feature_count": "INT64", "training_samples": "INT64", "training_start_date": "DATE",
                  "training_end_date": "DATE", "evaluation_mae": "FLOAT64",
                  "evaluation_hit_rate_edge_3plus": "FLOAT64", "quantile_alpha": "FLOAT64",
                  "is_production": "BOOL", "enabled": "BOOL", "features_json": "JSON",
                  "created_at": "TIMESTAMP"}


def _typed(row: dict) -> dict:
    """An export row (everything text) as the typed row the table holds."""
    out = {}
    for key, value in row.items():
        kind = REGISTRY_TYPES.get(key, "STRING")
        if value is None:
            out[key] = None
        elif kind == "INT64":
            out[key] = int(value)
        elif kind == "FLOAT64":
            out[key] = float(value)
        elif kind == "BOOL":
            out[key] = value == "true"
        elif kind == "JSON":
            out[key] = json.loads(value)
        else:
            out[key] = value
    return out


@pytest.mark.emulator
def test_import_registry_reads_the_old_table_directly(old_models, imported, tmp_path, capsys):
    """#11: ``--source bigquery://PROJECT.nba_predictions`` reads ``model_registry`` itself (emulator);
    the registry equals the one imported from the JSON export, validates, and its models score."""
    import io

    from google.cloud import bigquery

    from pipeline.io import cloud
    from tests.emulators import bigquery_emulator

    folder, rows = old_models
    project = "nba-props-platform"
    typed = [_typed(dict(r, created_at="2026-01-02T10:15:00+00:00")) for r in rows]
    columns = sorted({k for r in typed for k in r})
    schema = [bigquery.SchemaField(c, REGISTRY_TYPES.get(c, "STRING"),
                                   mode="REQUIRED" if c in ("model_id", "gcs_path") else "NULLABLE")
              for c in columns]
    with bigquery_emulator(project=project) as emu:
        cloud.use_emulators(bigquery_endpoint=emu.endpoint, project=project)
        client = cloud.bigquery_client(project)
        client.create_dataset(bigquery.Dataset(f"{project}.nba_predictions"))
        table = client.create_table(bigquery.Table(f"{project}.nba_predictions.model_registry",
                                                   schema=schema))
        data = "\n".join(json.dumps(r) for r in typed).encode()
        config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                                        schema=schema)
        client.load_table_from_file(io.BytesIO(data), table, job_config=config).result()
        out = tmp_path / "registry.json"
        code = legacy_command.main(["import-registry", "--source", f"bigquery://{project}.nba_predictions",
                                    "--out", str(out), "--artifacts", str(folder), "--bigquery-endpoint",
                                    emu.endpoint])
        printed = capsys.readouterr()
        by_table = legacy_command.import_registry(f"bigquery://{project}.nba_predictions.model_registry",
                                                  str(tmp_path / "again.json"), artifacts=str(folder))[0]
    assert code == 1, printed  # the same two rows are not imported, and said so
    assert "catboost_v9_tampered" in printed.err and "imported 4 models (2 enabled)" in printed.out
    registry = load_registry(str(out)).validate()
    _code, from_export, _folder = imported
    key = [(m.model_id, m.family, m.feature_set, m.loss, m.quantile_alpha, m.enabled, m.status, m.sha256,
            m.training_start, m.training_end) for m in sorted(registry.models, key=lambda m: m.model_id)]
    assert key == [(m.model_id, m.family, m.feature_set, m.loss, m.quantile_alpha, m.enabled, m.status,
                    m.sha256, m.training_start, m.training_end)
                   for m in sorted(from_export.models, key=lambda m: m.model_id)]
    assert [m.model_id for m in by_table.models] == [m.model_id for m in registry.models]
    v12 = next(m for m in registry.models if m.model_id == "catboost_v12_q43_train1102_1231")
    assert v12.training_params["legacy"]["created_at"] == "2026-01-02T10:15:00+00:00"
    rng = np.random.default_rng(1)
    for spec in registry.enabled():
        handler = handler_for(spec, batch_size=None)
        vectors = [rng.normal(10, 5, spec.feature_count).astype(np.float32) for _ in range(3)]
        got = [r.inference for r in handler.run_inference(list(zip("abc", vectors, strict=True)),
                                                          handler.load_model())]
        direct = CatBoostRegressor()
        direct.load_model(spec.artifact_uri)
        assert got == pytest.approx(direct.predict(np.stack(vectors)).tolist())


def test_registry_source_uris():
    from pipeline.io.legacy import export_value, registry_table

    assert registry_table("bigquery://p-1.nba_predictions") == "p-1.nba_predictions.model_registry"
    assert registry_table("bigquery://p-1.nba_predictions.old_registry") == "p-1.nba_predictions.old_registry"
    with pytest.raises(ValueError, match="bigquery://PROJECT.DATASET"):
        registry_table("bigquery://p-1")
    assert export_value(dt.datetime(2026, 1, 2, 10, 15, tzinfo=dt.UTC)) == "2026-01-02T10:15:00+00:00"
    assert export_value(dt.date(2026, 1, 2)) == "2026-01-02" and export_value(["a"]) == ["a"]
