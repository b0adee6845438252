#!/usr/bin/env bash
# Launches the batch template in one of its modes.
#   PROJECT=my-proj bash launch_templates/run_batch.sh run --game_date=2026-02-22 [--as_of=...] [--run_mode=...]
#   PROJECT=my-proj bash launch_templates/run_batch.sh backfill --start=2025-11-01 --end=2026-02-21
#   PROJECT=my-proj bash launch_templates/run_batch.sh grade --date=2026-02-22
# Extra name=value parameters are passed through; add --preflight_only=true for a dry run.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "${HERE}/env.sh"
COMMAND="${1:?usage: run_batch.sh run|backfill|grade [--name=value ...]}"
shift
case "${COMMAND}" in run|backfill|grade) ;; *) echo "unknown mode ${COMMAND}" >&2; exit 2 ;; esac
PARAMS="command=${COMMAND},inputs=bigquery://${PROJECT}.${RAW_DATASET},warehouse=bigquery://${PROJECT}.${DATASET}"
PARAMS="${PARAMS},exports=${EXPORTS},registry=${REGISTRY},policy=${POLICY},${COMMON_PARAMS}"
for arg in "$@"; do PARAMS="${PARAMS},${arg#--}"; done
JOB="props-${COMMAND}-$(date -u +%Y%m%d-%H%M%S)"
gcloud dataflow flex-template run "${JOB}" --project="${PROJECT}" --region="${REGION}" \
  --template-file-gcs-location="${BATCH_TEMPLATE}" --parameters="${PARAMS}"
