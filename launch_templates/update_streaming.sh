#!/usr/bin/env bash
# Updates the running streaming job in place (same job name, --update), or drains it.
#   PROJECT=my-proj bash launch_templates/update_streaming.sh update [--name=value ...]
#   PROJECT=my-proj bash launch_templates/update_streaming.sh drain
# Update keeps in-flight state (line books, debounce timers, pick versions) as long as step labels are
# unchanged (they are explicit and stable in the graph); if Dataflow rejects the update as incompatible,
# drain, then run_streaming.sh with the new template (state restarts; picks are re-derived from the
# replayed/refreshed inputs and the warehouse keeps every pick version).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "${HERE}/env.sh"
ACTION="${1:?usage: update_streaming.sh update|drain [--name=value ...]}"
shift
job_id() {
  gcloud dataflow jobs list --project="${PROJECT}" --region="${REGION}" --status=active \
    --filter="name=${STREAM_JOB_NAME}" --format="value(JOB_ID)" | head -n1
}
case "${ACTION}" in
  update)
    PARAMS="command=stream,inputs=bigquery://${PROJECT}.${RAW_DATASET},warehouse=bigquery://${PROJECT}.${DATASET}"
    PARAMS="${PARAMS},exports=${EXPORTS},registry=${REGISTRY},policy=${POLICY},${COMMON_PARAMS}"
    PARAMS="${PARAMS},${STREAM_PARAMS}"
    for arg in "$@"; do PARAMS="${PARAMS},${arg#--}"; done
    gcloud dataflow flex-template run "${STREAM_JOB_NAME}" --project="${PROJECT}" --region="${REGION}" \
      --template-file-gcs-location="${STREAMING_TEMPLATE}" --parameters="${PARAMS}" \
      --additional-experiments=enable_streaming_engine --update
    ;;
  drain)
    JOB_ID="$(job_id)"
    if [ -z "${JOB_ID}" ]; then echo "no active job named ${STREAM_JOB_NAME}" >&2; exit 1; fi
    gcloud dataflow jobs drain "${JOB_ID}" --project="${PROJECT}" --region="${REGION}"
    ;;
  *) echo "unknown action ${ACTION}" >&2; exit 2 ;;
esac
