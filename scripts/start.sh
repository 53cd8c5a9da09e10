#!/usr/bin/env bash
# Quick start: install what is needed, then open the dashboard on the synthetic demo cohort.
set -euo pipefail
source "$(dirname "$0")/setup.sh"
# A CJK font lets the patient report's PDF be in Chinese; without it the PDF falls back to English.
if [ ! -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq fonts-wqy-zenhei >/dev/null || echo "note: no CJK font; Chinese PDF reports fall back to English"
fi
# ui.serve is `streamlit run app.py` with the first page's imports done while the browser loads (ui/serve.py).
exec "$PY" -m ui.serve "$@"
