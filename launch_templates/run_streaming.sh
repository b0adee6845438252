#!/usr/bin/env bash
# Launches the streaming job (one per project; its name is stable so it can be updated in place).
#   PROJECT=my-proj bash launch_templates/run_streaming.sh [--debounce_seconds=2 ...]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "${HERE}/env.sh"
PARAMS="command=stream,inputs=bigquery://${PROJECT}.${RAW_DATASET},warehouse=bigquery://${PROJECT}.${DATASET}"
PARAMS="${PARAMS},exports=${EXPORTS},registry=${REGISTRY},policy=${POLICY},${COMMON_PARAMS}"
PARAMS="${PARAMS},${STREAM_PARAMS}"
for arg in "$@"; do PARAMS="${PARAMS},${arg#--}"; done
gcloud dataflow flex-template run "${STREAM_JOB_NAME}" --project="${PROJECT}" --region="${REGION}" \
  --template-file-gcs-location="${STREAMING_TEMPLATE}" --parameters="${PARAMS}" \
  --additional-experiments=enable_streaming_engine
