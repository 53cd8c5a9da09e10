#!/usr/bin/env bash
# Every test: installs the requirements and Debian's Chromium (browser tests use it; no browser download),
# then runs pytest. Extra arguments go to pytest (e.g. -k patient).
set -euo pipefail
source "$(dirname "$0")/setup.sh"
# Debian packages the tests need: Chromium for the browser tests, a CJK font for the Chinese PDF report.
if ! command -v chromium >/dev/null 2>&1 || [ ! -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium fonts-wqy-zenhei fonts-dejavu-core >/dev/null
fi
export TF_CPP_MIN_LOG_LEVEL=2
exec "$PY" -m pytest "$@"
