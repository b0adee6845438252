"""GCS objects for the public JSON exports (``--exports gs://BUCKET/PREFIX``).

``pipeline.io.exports.write_json`` builds the same documents for a local folder and for ``gs://``; for a
``gs://`` URI it hands the bytes to :func:`write_object`, which uploads them with their HTTP metadata in
ONE request: ``Content-Type: application/json`` and a ``Cache-Control`` suited to a public API
(``latest.json`` and ``record.json`` short-lived: ``public, max-age=60``; dated files
``public, max-age=3600``). One request means the object never exists, even briefly, with GCS's default
one-hour caching (a CDN could otherwise pin a stale ``latest.json``); an object upload is atomic, so
readers see the old or the new document, never a partial one.

Every other ``gs://`` access (inputs, model artifacts, Beam's temp files) goes through Beam's
``FileSystems``; both use google-cloud-storage, so ``--gcs_endpoint`` (``pipeline.io.cloud``) points both at
the local emulator in tests.
"""

from __future__ import annotations

import posixpath

from pipeline.io import cloud

JSON_MIME = "application/json"
SHORT_CACHE = "public, max-age=60"
LONG_CACHE = "public, max-age=3600"
SHORT_LIVED_NAMES = ("latest.json", "record.json", "performance.json")


def split_gs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b.json`` -> (``bucket``, ``a/b.json``); ValueError otherwise."""
    if not uri.startswith("gs://"):
        raise ValueError(f"expected gs://BUCKET/PATH, got {uri!r}")
    bucket, _, name = uri[len("gs://"):].partition("/")
    if not bucket or not name:
        raise ValueError(f"expected gs://BUCKET/PATH, got {uri!r}")
    return bucket, name


def cache_control_for(uri: str) -> str:
    """The Cache-Control of an export: documents that change during the day are short-lived."""
    return SHORT_CACHE if posixpath.basename(uri) in SHORT_LIVED_NAMES else LONG_CACHE


def write_object(uri: str, data: bytes, *, mime_type: str = JSON_MIME,
                 cache_control: str | None = None) -> str:
    """Uploads ``data`` to ``gs://`` with its content type and cache header (one request); returns uri."""
    bucket, name = split_gs_uri(uri)
    blob = cloud.storage_client().bucket(bucket).blob(name)
    blob.cache_control = cache_control or cache_control_for(uri)
    blob.upload_from_string(data, content_type=mime_type)
    return uri


def object_metadata(uri: str) -> dict:
    """Content type, cache control and size of an object (for checks and tests)."""
    bucket, name = split_gs_uri(uri)
    blob = cloud.storage_client().bucket(bucket).get_blob(name)
    if blob is None:
        raise FileNotFoundError(uri)
    return {"content_type": blob.content_type, "cache_control": blob.cache_control, "size": blob.size}


def ensure_bucket(bucket: str, *, location: str = "US") -> None:
    """Creates a bucket if it does not exist (local emulator set-up; production uses gcloud)."""
    client = cloud.storage_client()
    if not client.bucket(bucket).exists():
        client.create_bucket(bucket, location=location)
