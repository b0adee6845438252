#!/usr/bin/env bash
# Installs the local Google Cloud emulators used by the BigQuery and GCS tests, each in its own venv:
#   ./.emu/bq-venv   bqemulator (DuckDB-backed BigQuery REST + Storage Read API)
#   ./.emu/gcs-venv  gcp-storage-emulator (GCS JSON API; works with Beam's GCS filesystem)
# Idempotent: a venv whose emulator already imports is left alone. No interactive input.
# Usage: bash .ci/emulators.sh   (from anywhere; paths are relative to the repository root)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMU="${ROOT}/.emu"
PYTHON="${EMU_PYTHON:-python3}"

BQEMULATOR_VERSION="1.4.0"
GCS_EMULATOR_VERSION="2026.7.19"
NUMPY_VERSION="2.4.6"

mkdir -p "${EMU}"

install_venv() {
  local name="$1" module="$2"
  shift 2
  local spec="$*"
  local venv="${EMU}/${name}"
  if [ -x "${venv}/bin/python" ] && "${venv}/bin/python" -c "import ${module}" >/dev/null 2>&1 \
     && [ -f "${venv}/.installed-${spec//[^A-Za-z0-9.=_-]/_}" ]; then
    echo "emulators: ${name} already has ${spec}"
    return 0
  fi
  echo "emulators: installing ${spec} into ${venv}"
  rm -rf "${venv}"
  "${PYTHON}" -m venv "${venv}"
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$@"
  "${venv}/bin/python" -c "import ${module}"
  touch "${venv}/.installed-${spec//[^A-Za-z0-9.=_-]/_}"
}

# bqemulator registers DuckDB Python UDFs at start-up, which needs numpy (not a declared dependency).
install_venv bq-venv bqemulator "bqemulator==${BQEMULATOR_VERSION}" "numpy==${NUMPY_VERSION}"
install_venv gcs-venv gcp_storage_emulator "gcp-storage-emulator==${GCS_EMULATOR_VERSION}"
echo "emulators: ready in ${EMU}"
