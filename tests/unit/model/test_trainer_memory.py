"""Issue 18.3: memory grew with every new architecture (866 -> 1,116 MB over 80 trainings in the dashboard).
Each architecture traces its own epoch function; a Keras optimizer traced into it kept ~1.5 MB per trace
that nothing released, so the trainer cache's evictions freed nothing. Measured in a fresh interpreter:
40 fits, each a new architecture (one and two hidden layers in turn), small data, two epochs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = r"""
import gc, json
from core.data import cleveland_schema, demo_cohort
from core.model import RiskModel, TrainConfig

def rss_mb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS"))

df = demo_cohort().head(120)
schema = cleveland_schema()
y = schema.outcome(df).to_numpy()
rss = []
for i in range(40):
    hidden = (4 + i,) if i % 2 == 0 else (3 + i, 2)
    RiskModel(schema, TrainConfig(hidden=hidden, epochs=2, early_stopping=False)).fit(df, y)
    gc.collect()
    rss.append(rss_mb())
print(json.dumps(rss))
"""

# The trainer cache holds 8 architectures: the first fits fill it (~25 MB), then every fit evicts one.
# Measured after the change: +4 MB from fit 10 to fit 40 (before: +85 MB, ~2.8 MB per architecture).
WARM_UP = 10
BOUND_MB = 25.0


def test_forty_new_architectures_do_not_grow_memory():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    growth = rss[-1] - rss[WARM_UP - 1]
    print(f"RSS after fit 1 / {WARM_UP} / 40: {rss[0]:.0f} / {rss[WARM_UP - 1]:.0f} / {rss[-1]:.0f} MB; "
          f"growth over the last {40 - WARM_UP} fits {growth:.1f} MB")
    assert growth < BOUND_MB
