"""GCS exports against the local gcp-storage-emulator (real storage client and Beam FileSystems)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from apache_beam.io.filesystems import FileSystems

from pipeline.io import cloud
from tests.emulators import gcs_emulator

pytestmark = pytest.mark.emulator

BUCKET = "props-exports"


@pytest.fixture(scope="module")
def gcs():
    with gcs_emulator() as emu:
        cloud.use_emulators(gcs_endpoint=emu.endpoint, project="test-project")
        from pipeline.io import gcs as gcs_mod

        gcs_mod.ensure_bucket(BUCKET)
        yield emu


def test_exports_get_json_content_type_and_cache_headers(gcs):
    from pipeline.io import gcs as gcs_mod
    from pipeline.io.exports import write_json

    latest = f"gs://{BUCKET}/v1/best-bets/latest.json"
    dated = f"gs://{BUCKET}/v1/best-bets/2026-02-22.json"
    write_json(latest, {"n": 1}, cache_control=gcs_mod.SHORT_CACHE)
    write_json(dated, {"n": 1})
    assert gcs_mod.object_metadata(latest)["cache_control"] == "public, max-age=60"
    assert gcs_mod.object_metadata(dated) == {"content_type": "application/json",
                                              "cache_control": "public, max-age=3600", "size": 7}


def test_decimal_round_trips_into_json_exports_as_a_plain_number(gcs):
    from pipeline.io.exports import write_json

    uri = f"gs://{BUCKET}/v1/admin/picks/2026-02-22.json"
    write_json(uri, {"line": Decimal("24.50"), "edge": Decimal("5"), "date": dt.date(2026, 2, 22)})
    with FileSystems.open(uri) as f:
        text = f.read().decode()
    assert json.loads(text) == {"line": 24.5, "edge": 5, "date": "2026-02-22"}
    assert '"24.5' not in text  # a number, not a string


def test_rewrite_replaces_the_object_and_beam_filesystems_lists_it(gcs):
    from pipeline.io.exports import write_json

    uri = f"gs://{BUCKET}/v2/best-bets/latest.json"
    write_json(uri, {"v": 1})
    write_json(uri, {"v": 2})
    with FileSystems.open(uri) as f:
        assert json.loads(f.read()) == {"v": 2}
    paths = [m.path for m in FileSystems.match([f"gs://{BUCKET}/v2/**"])[0].metadata_list]
    assert paths == [uri]


def test_write_object_rejects_non_gcs_uris():
    from pipeline.io import gcs as gcs_mod

    with pytest.raises(ValueError, match="gs://BUCKET/PATH"):
        gcs_mod.write_object("/tmp/x.json", b"{}")
