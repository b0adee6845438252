"""Flex templates: metadata valid against the JSON Schema, one to one with the options, launcher argv."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from launch_templates import metadata as md

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "launch_templates"


def validate(instance, schema: dict, path: str = "$") -> list[str]:
    """Errors of ``instance`` against the JSON Schema subset metadata.schema.json uses."""
    errors: list[str] = []
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if "type" in schema and not isinstance(instance, types[schema["type"]]):
        return [f"{path}: expected {schema['type']}"]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{path}: {instance!r} not in enum")
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            errors.append(f"{path}: too short")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errors.append(f"{path}: does not match {schema['pattern']}")
    if isinstance(instance, dict):
        errors += [f"{path}: missing {k}" for k in schema.get("required", []) if k not in instance]
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            errors += [f"{path}: unexpected key {k!r}" for k in instance if k not in props]
        for k, v in instance.items():
            if k in props:
                errors += validate(v, props[k], f"{path}.{k}")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        for i, item in enumerate(instance):
            errors += validate(item, schema.get("items", {}), f"{path}[{i}]")
    return errors


SCHEMA = json.loads((TEMPLATES / "metadata.schema.json").read_text())


@pytest.mark.parametrize("mode", ["batch", "streaming"])
def test_metadata_files_validate_and_match_the_options_one_to_one(mode):
    doc = json.loads(md.FILES[mode].read_text())
    assert validate(doc, SCHEMA) == []
    assert md.FILES[mode].read_text() == md.render(mode), "run: python launch_templates/metadata.py"
    names = [p["name"] for p in doc["parameters"]]
    assert len(names) == len(set(names))
    expected = set(md.template_options(mode)) | {"command"}
    assert set(names) == expected
    for p in doc["parameters"]:
        re.compile(p["regexes"][0])


def test_validator_catches_typos():
    doc = json.loads(md.FILES["batch"].read_text())
    doc["parameters"][1]["paramtype"] = "TEXT"
    doc["parameters"][2]["paramType"] = "GCS_FOLDER"
    errors = validate(doc, SCHEMA)
    assert any("paramtype" in e for e in errors) and any("GCS_FOLDER" in e for e in errors)


@pytest.mark.parametrize(("name", "good", "bad"), [
    ("game_date", "2026-02-22", "22/02/2026"),
    ("warehouse", "bigquery://my-proj.props", "duckdb:///x.duckdb"),
    ("exports", "gs://my-bucket/exports", "/tmp/exports"),
    ("legacy_exports", "gs://nba-props-platform-api/v1", "nba-props-platform-api/v1"),
    ("as_of", "2026-02-22T23:00:00Z", "yesterday"),
    ("run_mode", "LAST_CALL", "last"),
    ("command", "backfill", "stream"),
])
def test_regexes_accept_valid_and_reject_invalid_values(name, good, bad):
    regex = md.command_parameter("batch")["regexes"][0] if name == "command" else md.PARAMS[name][1]
    assert re.match(regex, good) and not re.match(regex, bad)


@pytest.mark.parametrize("mode", ["batch", "streaming"])
def test_legacy_exports_is_a_template_parameter_of_both_modes(mode):
    """#11: the old website's files can be switched on from a template launch (batch and streaming)."""
    doc = json.loads(md.FILES[mode].read_text())
    param = next(p for p in doc["parameters"] if p["name"] == "legacy_exports")
    assert param["isOptional"] and param["paramType"] == "GCS_WRITE_FOLDER"
    assert "switch-over" in param["label"]
    assert "best-bets/all.json" in param["helpText"] and "--exports" in param["helpText"]
    assert re.match(param["regexes"][0], "gs://nba-props-platform-api/v1")


def test_every_option_needs_a_template_entry():
    with pytest.raises(KeyError, match="no flex template entry"):
        md.parameter("brand_new_option", "help")


def test_launcher_argv_selects_the_mode_and_converts_booleans():
    from main import launcher_argv

    assert launcher_argv(["--command=grade", "--date=2026-02-22", "--preflight_only=true",
                          "--runner=DataflowRunner"]) == ["grade", "--date=2026-02-22", "--preflight_only",
                                                          "--runner=DataflowRunner"]
    # A template launch always submits to Dataflow, unless a runner is given.
    assert launcher_argv(["--command", "stream", "--events_topic=t1", "--preflight_only=false"]) == \
        ["stream", "--events_topic=t1", "--runner=DataflowRunner"]
    with pytest.raises(SystemExit, match="--command"):
        launcher_argv(["--game_date=2026-02-22"])


def test_image_pins_the_beam_version_of_setup_py():
    setup = (ROOT / "setup.py").read_text()
    beam = re.search(r'BEAM_VERSION = "([\d.]+)"', setup).group(1)
    dockerfile = (TEMPLATES / "Dockerfile").read_text()
    assert f"ARG BEAM_VERSION={beam}" in dockerfile
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE" in dockerfile and "python311-template-launcher-base" in dockerfile


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud not installed")
def test_gcloud_flex_template_build_print_only_accepts_both_templates():
    out = subprocess.run(["bash", str(TEMPLATES / "build.sh"), "--print-only"], capture_output=True,
                         text=True,
                         env={"PROJECT": "props-test", "PATH": "/usr/bin:/bin:/usr/local/bin",
                              "HOME": str(Path.home()), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"name": "props-batch"' in out.stdout and '"name": "props-streaming"' in out.stdout


def dockerfile_images() -> list[str]:
    """The image of every FROM line, with the Dockerfile's ARG defaults substituted."""
    text = (TEMPLATES / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.M))
    images = []
    for image in re.findall(r"^FROM (\S+)", text, flags=re.M):
        images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    return images


def test_base_images_are_pinned_to_explicit_tags():
    images = dockerfile_images()
    assert len(images) == 2
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{image}: no explicit tag"
        assert tag != "latest", f"{image}: pin a dated release, not :latest"
    launcher, sdk = images
    assert launcher.startswith("gcr.io/dataflow-templates-base/python311-template-launcher-base:")
    assert re.fullmatch(r"\d{8}_RC\d\d", launcher.rpartition(":")[2]), launcher
    beam = re.search(r'BEAM_VERSION = "([\d.]+)"', (ROOT / "setup.py").read_text()).group(1)
    assert sdk == f"apache/beam_python3.11_sdk:{beam}"


def test_workers_do_not_build_the_package_the_image_already_holds():
    dockerfile = (TEMPLATES / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install .*-e \.", dockerfile, flags=re.M), "the image installs the package"
    env_names = re.findall(r"^ENV\s+(\w+)", dockerfile, flags=re.M)
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE" in env_names
    assert "FLEX_TEMPLATE_PYTHON_SETUP_FILE" not in env_names  # every worker would build the package
    assert "FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE" not in env_names
    for script in TEMPLATES.glob("*.sh"):
        assert "setup_file" not in script.read_text(), script.name
    env = (TEMPLATES / "env.sh").read_text()
    assert "sdk_container_image=${IMAGE}" in env  # the workers run the image that holds the package
