# Sourced by start.sh and test.sh: a project virtualenv in .venv with the pinned requirements.
# Re-running is cheap: pip only installs when requirements.txt changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON_BIN="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON_BIN" -m venv .venv 2>/dev/null; then
    # Debian ships venv separately.
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; else sudo apt-get install -y python3-venv; fi
    rm -rf .venv && "$PYTHON_BIN" -m venv .venv
  fi
fi
PY="$ROOT/.venv/bin/python"
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi
export PY
# The app's own bytecode, written once: where PYTHONDONTWRITEBYTECODE is set (these machines set it), every
# cold server otherwise compiled its ~40 modules again before the first page (pip already compiles packages).
"$PY" -m compileall -q -j 0 app.py core ui pages >/dev/null || true
