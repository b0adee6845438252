"""The props pipeline package: ``pipeline`` (the Beam graph and CLI), ``models`` and ``sim``.

The flex-template image installs this package (launch_templates/Dockerfile) and serves as the Dataflow
workers' SDK container, so workers never build it at start (no ``--setup_file``); every runtime dependency
is pinned here, to the versions the image is built with.
"""

from setuptools import find_packages, setup

BEAM_VERSION = "2.77.0"

setup(
    name="props-pipeline",
    version="0.1.0",
    description="NBA player-points props prediction pipeline on Apache Beam",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["pipeline", "pipeline.*", "models", "models.*", "sim", "sim.*"]),
    package_data={"models": ["sample/*.json", "sample/*.cbm"], "pipeline": ["policies/*.json"]},
    include_package_data=True,
    install_requires=[
        f"apache-beam[gcp]=={BEAM_VERSION}",
        "catboost==1.2.10",
        "numpy==2.4.6",
        "pandas==3.1.1",
        "pyarrow==25.0.1",
        "duckdb==2.0.1",
        "google-cloud-bigquery==3.47.0",
        "google-cloud-storage==3.17.0",
        "google-cloud-pubsub==2.44.0",
        "matplotlib==3.11.2",
        "orjson==3.13.0",  # JSON lines and messages: parse.decode_json
    ],
    extras_require={
        "test": ["pytest==9.2.0", "ruff==0.17.6", "jsonschema==4.26.0"],
    },
    entry_points={"console_scripts": ["props=pipeline.cli:main"]},
)
