"""options.memoise_option_views: one PipelineOptions view per options object and class, reading and writing
the same values as Beam's fresh views (run in a fresh interpreter: the patch is process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CODE = r'''
import json
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions
from pipeline.commands import common
from pipeline.options import StreamOptions

def state(o):
    g, s, st = o.view_as(GoogleCloudOptions), o.view_as(StandardOptions), o.view_as(StreamOptions)
    return {"project": g.project, "runner": s.runner, "streaming": s.streaming,
            "topic": st.events_topic, "all": sorted((k, repr(v)) for k, v in o.get_all_options().items())}

def scenario():
    o = PipelineOptions(["--project", "p1", "--runner", "DirectRunner", "--events_topic", "t1"])
    out = [state(o)]
    o.view_as(GoogleCloudOptions).project = "p2"  # a write through one view is seen by every view
    o.view_as(StandardOptions).streaming = True
    out.append(state(o))
    other = PipelineOptions(["--project", "q"])  # another options object: its own views
    out.append(state(other))
    out.append(state(o))
    return out

before = scenario()
common.prepare_local_environment()
after = scenario()
o = PipelineOptions(["--project", "p"])
same = o.view_as(GoogleCloudOptions) is o.view_as(GoogleCloudOptions)
o._all_options = dict(o._all_options, project="replaced")  # a replaced dict: the view is built again
rebuilt = o.view_as(GoogleCloudOptions).project
print(json.dumps({"equal": before == after, "same": same, "rebuilt": rebuilt,
                  "memoised": getattr(PipelineOptions.view_as, "_props_memoised", False)}))
'''


def test_memoised_views_read_and_write_what_beams_fresh_views_do():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True).stdout.strip().splitlines()
    result = json.loads(out[-1])
    assert result == {"equal": True, "same": True, "rebuilt": "replaced", "memoised": True}
