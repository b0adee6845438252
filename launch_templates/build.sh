#!/usr/bin/env bash
# Builds the one image (launcher + SDK container) with Cloud Build, then both flex templates.
#   PROJECT=my-proj bash launch_templates/build.sh [--print-only]
# --print-only: only print the template specs (gcloud validates the metadata offline; no image is built).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${HERE}/.." && pwd)"
# shellcheck source=env.sh
source "${HERE}/env.sh"
PRINT_ONLY=""
if [ "${1:-}" = "--print-only" ]; then PRINT_ONLY="--print-only"; fi

if [ -z "${PRINT_ONLY}" ]; then
  gcloud builds submit "${ROOT}" --project="${PROJECT}" --region="${REGION}" \
    --config=/dev/stdin <<YAML
steps:
- name: gcr.io/cloud-builders/docker
  args: [build, -f, launch_templates/Dockerfile, -t, "${IMAGE}", .]
images: ["${IMAGE}"]
YAML
fi

gcloud dataflow flex-template build "${BATCH_TEMPLATE}" --project="${PROJECT}" \
  --image="${IMAGE}" --sdk-language=PYTHON \
  --metadata-file="${HERE}/batch_metadata.json" ${PRINT_ONLY}

gcloud dataflow flex-template build "${STREAMING_TEMPLATE}" --project="${PROJECT}" \
  --image="${IMAGE}" --sdk-language=PYTHON \
  --metadata-file="${HERE}/streaming_metadata.json" ${PRINT_ONLY}
