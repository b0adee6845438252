#!/usr/bin/env bash
# One-time (idempotent) setup of a project for the props pipeline: everything the jobs need to exist
# before they launch. The jobs never create these themselves on Dataflow; the launch preflight
# (pipeline/io/cloud.py launch_preflight) checks them and names this script when one is missing.
#   PROJECT=my-proj bash launch_templates/setup.sh            # create what is missing
#   PROJECT=my-proj bash launch_templates/setup.sh --check    # only report what is missing (exit 1)
# Creates: the bucket (templates, temp, staging, exports, models, policies), the warehouse and raw
# datasets, the Artifact Registry repository, the Pub/Sub topics and the events subscription, and the
# job's service account with its roles. Run by a person with Owner (or the admin roles per resource).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "${HERE}/env.sh"
CHECK_ONLY=""
if [ "${1:-}" = "--check" ]; then CHECK_ONLY=1; fi
MISSING=0

# ensure NAME DESCRIBE-COMMAND -- CREATE-COMMAND: runs CREATE only when DESCRIBE fails.
ensure() {
  local name="$1"; shift
  local describe=() create=()
  while [ "$1" != "--" ]; do describe+=("$1"); shift; done
  shift
  create=("$@")
  if "${describe[@]}" >/dev/null 2>&1; then
    echo "ok       ${name}"
  elif [ -n "${CHECK_ONLY}" ]; then
    echo "MISSING  ${name}"; MISSING=1
  else
    echo "create   ${name}"; "${create[@]}"
  fi
}

if [ -z "${CHECK_ONLY}" ]; then
  gcloud services enable dataflow.googleapis.com bigquery.googleapis.com bigquerystorage.googleapis.com \
    pubsub.googleapis.com storage.googleapis.com artifactregistry.googleapis.com cloudbuild.googleapis.com \
    --project="${PROJECT}"
fi

ensure "bucket gs://${BUCKET}" gcloud storage buckets describe "gs://${BUCKET}" --project="${PROJECT}" -- \
  gcloud storage buckets create "gs://${BUCKET}" --project="${PROJECT}" --location="${REGION}" \
  --uniform-bucket-level-access
for ds in "${DATASET}" "${RAW_DATASET}"; do
  ensure "dataset ${PROJECT}.${ds}" bq --project_id="${PROJECT}" show --dataset "${PROJECT}:${ds}" -- \
    bq --project_id="${PROJECT}" mk --dataset --location="${BQ_LOCATION:-US}" "${PROJECT}:${ds}"
done
ensure "docker repository ${AR_REPO}" gcloud artifacts repositories describe "${AR_REPO}" \
  --project="${PROJECT}" --location="${REGION}" -- \
  gcloud artifacts repositories create "${AR_REPO}" --project="${PROJECT}" --location="${REGION}" \
  --repository-format=docker
for topic in "${EVENTS_TOPIC}" "${FEATURES_TOPIC}" "${PICKS_CHANGES_TOPIC}"; do
  ensure "topic ${topic}" gcloud pubsub topics describe "${topic}" --project="${PROJECT}" -- \
    gcloud pubsub topics create "${topic}" --project="${PROJECT}"
done
ensure "subscription ${EVENTS_SUBSCRIPTION}" gcloud pubsub subscriptions describe "${EVENTS_SUBSCRIPTION}" \
  --project="${PROJECT}" -- \
  gcloud pubsub subscriptions create "${EVENTS_SUBSCRIPTION}" --project="${PROJECT}" \
  --topic="${EVENTS_TOPIC}" --ack-deadline=60 --message-retention-duration=7d
ensure "service account ${SERVICE_ACCOUNT}" gcloud iam service-accounts describe "${SERVICE_ACCOUNT}" \
  --project="${PROJECT}" -- \
  gcloud iam service-accounts create "${SA_NAME}" --project="${PROJECT}" \
  --display-name="props pipeline (Dataflow launcher and workers)"

if [ -n "${CHECK_ONLY}" ]; then
  exit "${MISSING}"
fi

# Roles of the job's service account (the launcher VM and the workers both run as it):
#   dataflow.worker           run as a Dataflow worker
#   storage.objectAdmin       the bucket: staging, temp, exports, models, policies (bucket level)
#   bigquery.dataEditor       the warehouse dataset (read/write tables); bigquery.dataViewer on the raw one
#   bigquery.jobUser          run queries and load jobs (project)
#   bigquery.readSessionUser  Storage Read API sessions (project)
#   pubsub.subscriber         read the events subscription; pubsub.publisher on picks-changes
#   pubsub.viewer             the launch preflight reads the topics and subscription (project)
#   artifactregistry.reader   pull the image (launcher and SDK container)
for role in roles/dataflow.worker roles/bigquery.jobUser roles/bigquery.readSessionUser roles/pubsub.viewer \
            roles/artifactregistry.reader; do
  gcloud projects add-iam-policy-binding "${PROJECT}" --member="serviceAccount:${SERVICE_ACCOUNT}" \
    --role="${role}" --condition=None --quiet >/dev/null
done
gcloud storage buckets add-iam-policy-binding "gs://${BUCKET}" --member="serviceAccount:${SERVICE_ACCOUNT}" \
  --role=roles/storage.objectAdmin >/dev/null
bq --project_id="${PROJECT}" add-iam-policy-binding --member="serviceAccount:${SERVICE_ACCOUNT}" \
  --role=roles/bigquery.dataEditor "${PROJECT}:${DATASET}" >/dev/null
bq --project_id="${PROJECT}" add-iam-policy-binding --member="serviceAccount:${SERVICE_ACCOUNT}" \
  --role=roles/bigquery.dataViewer "${PROJECT}:${RAW_DATASET}" >/dev/null
gcloud pubsub subscriptions add-iam-policy-binding "${EVENTS_SUBSCRIPTION}" --project="${PROJECT}" \
  --member="serviceAccount:${SERVICE_ACCOUNT}" --role=roles/pubsub.subscriber >/dev/null
gcloud pubsub topics add-iam-policy-binding "${PICKS_CHANGES_TOPIC}" --project="${PROJECT}" \
  --member="serviceAccount:${SERVICE_ACCOUNT}" --role=roles/pubsub.publisher >/dev/null
echo "done: roles granted to ${SERVICE_ACCOUNT}. The person or CI that launches jobs needs"
echo "roles/dataflow.developer and roles/iam.serviceAccountUser on ${SERVICE_ACCOUNT}."
