# Shared settings of the build and launch scripts; override any of them in the environment.
# shellcheck shell=bash
: "${PROJECT:?set PROJECT to the Google Cloud project id}"
REGION="${REGION:-us-central1}"
BUCKET="${BUCKET:-${PROJECT}-props}"                       # templates, temp, staging, exports, models
DATASET="${DATASET:-props}"                                # warehouse dataset
RAW_DATASET="${RAW_DATASET:-props_raw}"                    # raw inputs (schedule, odds, injuries, ...)
AR_REPO="${AR_REPO:-props}"                                # Artifact Registry docker repository
IMAGE_TAG="${IMAGE_TAG:-$(git -C "$(dirname "${BASH_SOURCE[0]}")/.." rev-parse --short HEAD 2>/dev/null || echo latest)}"
IMAGE="${IMAGE:-${REGION}-docker.pkg.dev/${PROJECT}/${AR_REPO}/props-pipeline:${IMAGE_TAG}}"
SA_NAME="${SA_NAME:-props-dataflow}"
SERVICE_ACCOUNT="${SERVICE_ACCOUNT:-${SA_NAME}@${PROJECT}.iam.gserviceaccount.com}"
BATCH_TEMPLATE="${BATCH_TEMPLATE:-gs://${BUCKET}/templates/props-batch.json}"
STREAMING_TEMPLATE="${STREAMING_TEMPLATE:-gs://${BUCKET}/templates/props-streaming.json}"
STREAM_JOB_NAME="${STREAM_JOB_NAME:-props-stream}"
EVENTS_TOPIC="${EVENTS_TOPIC:-props-events}"                # Pub/Sub (created by setup.sh, never by a job)
EVENTS_SUBSCRIPTION="${EVENTS_SUBSCRIPTION:-props-events-sub}"
FEATURES_TOPIC="${FEATURES_TOPIC:-props-features}"
PICKS_CHANGES_TOPIC="${PICKS_CHANGES_TOPIC:-props-picks-changes}"
EXPORTS="${EXPORTS:-gs://${BUCKET}/exports}"
REGISTRY="${REGISTRY:-gs://${BUCKET}/models/registry.json}"
POLICY="${POLICY:-gs://${BUCKET}/policies/default.json}"
STREAM_PARAMS="pubsub_project=${PROJECT},events_topic=${EVENTS_TOPIC},events_subscription=${EVENTS_SUBSCRIPTION}"
STREAM_PARAMS="${STREAM_PARAMS},features_topic=${FEATURES_TOPIC},picks_changes_topic=${PICKS_CHANGES_TOPIC}"
# Options every job gets: the same image as SDK container, our service account, temp/staging on GCS.
COMMON_PARAMS="sdk_container_image=${IMAGE},service_account_email=${SERVICE_ACCOUNT},temp_location=gs://${BUCKET}/temp,staging_location=gs://${BUCKET}/staging"
