"""The Beam floor for bench_slate.py: the smallest Beam batch pipeline, process start included.

    .venv/bin/python bench/beam_floor.py

Create -> Map -> GroupByKey -> Map on the FnApiRunner (the runner ``props run`` uses locally), with the
same imports a slate pays for Beam itself. What any Beam job costs on this machine before it does work.
"""

from __future__ import annotations

import os
import time

T0 = time.perf_counter()

import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402


def main() -> None:
    os.environ.setdefault("NO_GCE_CHECK", "true")
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        (
            p
            | "Create" >> beam.Create(range(100))
            | "Key" >> beam.Map(lambda i: (i % 10, i))
            | "Group" >> beam.GroupByKey()
            | "Sum" >> beam.MapTuple(lambda k, vs: (k, sum(vs)))
        )
    print(f"minimal Beam pipeline: process {time.perf_counter() - T0:.2f} s")


if __name__ == "__main__":
    main()
