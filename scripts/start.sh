#!/usr/bin/env bash
# Quick start: install what is needed, then open the dashboard on the synthetic demo cohort.
set -euo pipefail
source "$(dirname "$0")/setup.sh"
exec "$PY" -m streamlit run app.py "$@"
