"""Batch scoring of a whole population, with exact SHAP reasons, on Ray Data.

    python -m core score --model DIR --input PATH... --output DIR [--reasons] [--shap] [--engine local|ray]

What runs where:

* The driver (this process) expands the inputs (files, globs, directories of CSV, Excel and Parquet),
  hashes them, and cuts every file into *parts* of at most ``part_rows`` rows: Parquet by row groups,
  CSV by byte ranges on line boundaries (a file with quoted fields, or UTF-16, stays one part), Excel one
  part per workbook. A part is a description (file, byte or row range), never data: the driver holds
  only these descriptions and each part's small report, whatever the size of the population.
* Ray Data streams the part descriptions through ``map_batches`` with :class:`PartScorer`, a callable
  class run by an actor pool (one actor per core). Each actor loads the bundle once, from the bundle's
  own files shipped by the driver (a few KB) and verified on the worker (the SHA-256 of metadata.json
  the driver recorded, then every file's SHA-256 in :func:`core.model.load_bundle`). It reads its part's
  rows itself, checks them as ``predict`` does, scores them with the same
  :func:`core.risk.score_table` (so the numbers are ``predict``'s and ``explain``'s), and writes the
  part as Parquet under a hidden temporary name, renamed into place when complete.
* Ray retries a part whose worker died (actor restarts and task retries are Ray Data's defaults for an
  actor pool); a part's file name and contents depend only on the part, so a retry rewrites the same
  file: nothing lost, nothing duplicated.
* The driver records every finished part in ``manifest.json`` (rewritten atomically). A rerun of the same
  command skips the parts the manifest lists as written whose file is still there with the recorded
  SHA-256; a crash between a part's rename and the manifest update only costs rescoring that part.

The ``inline`` engine runs the same parts in this process, one after the other (no Ray): the
one-process reference the benchmark and tests compare against.

Ray is imported only here, and only when a Ray engine runs.
"""
from __future__ import annotations

import datetime as _dt
import glob
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.data import check_features, read_table
from core.errors import CoreError
from core.model import load_bundle
from core.model.store import sha256_file
from core.workflow.engine import ray_session
from core.workflow.risk import score_table

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "heart-risk-scores"
# Rows per part: ~13 s of exact SHAP on a free core with a bundle's 20-30 background centres, small enough
# to retry cheaply; a part's fixed cost (read, check, write Parquet: ~0.07 CPU-s) is under 1% of it.
PART_ROWS = 20_000
MAX_BAD_ROWS_LISTED = 1000  # per part; the counts stay exact beyond it
SUFFIXES = {".csv": "csv", ".txt": "csv", ".data": "csv", ".tsv": "csv", ".xlsx": "excel", ".xlsm": "excel",
            ".parquet": "parquet", ".pq": "parquet"}
_MANIFEST_EVERY_S = 1.0  # the manifest is rewritten at most once a second while parts stream in


@dataclass
class Part:
    """A slice of one input file, described, not loaded."""
    id: str  # "f00003-p00012": file index and part index, so sorted ids follow the inputs' order
    file: str  # absolute path of the input
    kind: str  # csv | parquet | excel
    start_row: int  # 0-based data row of the file where the part starts
    n_rows: int  # rows in the part (-1: unknown before reading, an Excel workbook or an unsplit CSV)
    byte_start: int = 0  # csv: byte range of the part's lines
    byte_stop: int = -1
    header_bytes: int = 0  # csv: length of the header line prepended to a later part (0: none)
    row_groups: list[int] = field(default_factory=list)  # parquet: the row groups the part reads
    skip: int = 0  # parquet: rows of the first row group before the part

    @property
    def filename(self) -> str:
        return f"part-{self.id}.parquet"


@dataclass
class Options:
    reasons: bool = False
    top: int = 3
    shap: bool = False
    lang: str = "en"
    precision: str = "float64"  # float32: SHAP games in float32, within 1e-6 of predict's numbers, ~1.35x faster

    def __post_init__(self):
        if not 0 <= int(self.top) <= 13:
            raise CoreError("--top takes 0 to 13 reasons")
        if self.lang not in ("en", "zh"):
            raise CoreError("--lang is en or zh")
        if self.precision not in ("float64", "float32"):
            raise CoreError("precision is float64 or float32")


@dataclass
class ScoreResult:
    output: Path
    manifest: dict
    skipped_parts: int  # parts found complete from an earlier run


# ---- inputs --------------------------------------------------------------------------------------
def expand_inputs(paths: Iterable[str]) -> tuple[list[Path], list[dict]]:
    """Input files in a stable order, and the inputs that are not files we read (reported, not fatal).

    A directory gives its files with a known suffix (recursively, sorted); a glob its matches (sorted);
    a file itself. Hidden files and our own output folders' parts are not inputs.
    """
    files, bad = [], []
    for given in paths:
        if any(ch in given for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(given, recursive=True) if Path(m).is_file())
            if not matches:
                bad.append({"file": given, "error": "the pattern matches no file"})
            found = matches
        elif Path(given).is_dir():
            found = sorted(p for p in Path(given).rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(given).parts))
            if not found:
                bad.append({"file": given, "error": "the directory holds no CSV, Excel or Parquet file"})
        elif Path(given).is_file():
            found = [Path(given)]
        else:
            bad.append({"file": given, "error": "no such file or directory"})
            found = []
        for path in found:
            path = path.resolve()
            if path.suffix.lower() not in SUFFIXES:
                bad.append({"file": str(path),
                            "error": f"{path.suffix or 'no suffix'}: not a CSV, Excel or Parquet file"})
            elif path not in files:
                files.append(path)
    return files, bad


def plan_parts(files: list[Path], features: list[str],
               part_rows: int = PART_ROWS) -> tuple[list[Part], list[dict], list[dict]]:
    """Cut every input into parts. Returns (parts, inputs: path/kind/bytes/sha256/rows/parts, bad files).

    A file that cannot be read at all, or lacks a column the model needs, is a bad file: reported, and
    the other files are scored."""
    parts, inputs, bad = [], [], []
    for index, path in enumerate(files):
        kind = SUFFIXES[path.suffix.lower()]
        try:
            digest = sha256_file(path)
            size = path.stat().st_size
        except OSError as exc:
            bad.append({"file": str(path), "error": f"cannot read the file ({exc.strerror or type(exc).__name__})"})
            continue
        try:
            planner = {"csv": _plan_csv, "parquet": _plan_parquet, "excel": _plan_excel}[kind]
            file_parts = planner(index, path, features, max(1, int(part_rows)))
        except CoreError as exc:
            bad.append({"file": str(path), "error": str(exc)})
            continue
        except Exception as exc:  # noqa: BLE001 - a broken Parquet footer: the file is bad, not the job
            bad.append({"file": str(path), "error": f"cannot read the file ({type(exc).__name__})"})
            continue
        parts += file_parts
        known = all(p.n_rows >= 0 for p in file_parts)
        inputs.append({"file": str(path), "kind": kind, "bytes": size, "sha256": digest,
                       "rows": sum(p.n_rows for p in file_parts) if known else None, "parts": len(file_parts)})
    return parts, inputs, bad


def _check_columns(name: str, columns, features: list[str]) -> None:
    absent = [f for f in features if f not in set(map(str, columns))]
    if absent:
        raise CoreError(f"{name}: lacks columns the model needs: {', '.join(absent)}")


def _plan_parquet(index: int, path: Path, features: list[str], part_rows: int) -> list[Part]:
    import pyarrow.parquet as pq
    meta = pq.ParquetFile(path).metadata
    _check_columns(path.name, meta.schema.names, features)
    parts, start, groups, skip, rows = [], 0, [], 0, 0

    def close():
        nonlocal groups, rows, skip
        if rows:
            parts.append(Part(id=f"f{index:05d}-p{len(parts):05d}", file=str(path), kind="parquet",
                              start_row=start, n_rows=rows, row_groups=groups, skip=skip))

    for g in range(meta.num_row_groups):
        g_rows, offset = meta.row_group(g).num_rows, 0
        while offset < g_rows:
            if rows == part_rows:
                close()
                start, groups, skip, rows = start + rows, [], offset, 0
            take = min(part_rows - rows, g_rows - offset)
            if not groups or groups[-1] != g:
                groups.append(g)
            rows += take
            offset += take
    close()
    if not parts:
        raise CoreError(f"{path.name}: the file has no rows")
    return parts


def _plan_excel(index: int, path: Path, features: list[str], part_rows: int) -> list[Part]:
    # A workbook is read whole by openpyxl anyway (at most 1,048,576 rows): one part.
    return [Part(id=f"f{index:05d}-p00000", file=str(path), kind="excel", start_row=0, n_rows=-1)]


def _plan_csv(index: int, path: Path, features: list[str], part_rows: int) -> list[Part]:
    """Parts at line boundaries. Each part is parsed on its worker by core.data.read_table (delimiter,
    encoding, missing markers as for any upload), with the header line prepended."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    whole = [Part(id=f"f{index:05d}-p00000", file=str(path), kind="csv", start_row=0, n_rows=-1)]
    sample_end = head.rfind(b"\n", 0, len(head)) + 1 if len(head) == 1 << 16 else len(head)
    sample = read_table(head[:sample_end] if sample_end else head, name=path.name)
    _check_columns(path.name, sample.df.columns, features)
    # Quoted fields may hold line breaks, and UTF-16 has no one-byte newline: such a file is one part.
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b'"' in head:
        return whole
    boundaries, rows, data_rows = [], 0, []  # byte offsets where a part starts; data rows before it
    offset = header_bytes = 0
    first = True
    with open(path, "rb") as fh:
        for line in fh:
            if b'"' in line:
                return whole
            if first and sample.has_header:
                header_bytes = len(line)
                offset += len(line)
                first = False
                continue
            first = False
            if line.strip():
                if rows % part_rows == 0:
                    boundaries.append(offset)
                    data_rows.append(rows)
                rows += 1
            offset += len(line)
    if not rows:
        raise CoreError(f"{path.name}: the file has no data rows")
    parts = []
    for k, begin in enumerate(boundaries):
        stop = boundaries[k + 1] if k + 1 < len(boundaries) else offset
        n = (data_rows[k + 1] if k + 1 < len(data_rows) else rows) - data_rows[k]
        parts.append(Part(id=f"f{index:05d}-p{k:05d}", file=str(path), kind="csv", start_row=data_rows[k], n_rows=n,
                          byte_start=begin, byte_stop=stop, header_bytes=header_bytes))
    return parts


def read_part(part: Part):
    """The part's rows as read (numbers and text), its own index 0..n-1."""
    import pandas as pd
    path = Path(part.file)
    if part.kind == "parquet":
        import pyarrow.parquet as pq
        table = pq.ParquetFile(path).read_row_groups(part.row_groups).slice(part.skip, part.n_rows)
        return table.to_pandas().reset_index(drop=True)
    if part.kind == "excel":
        try:
            return pd.read_excel(path, engine="openpyxl")
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a damaged workbook
            raise CoreError(f"{path.name}: not a readable Excel workbook ({type(exc).__name__})") from None
    if part.byte_stop < 0:  # the whole file
        with open(path, "rb") as fh:
            data = fh.read()
    else:
        with open(path, "rb") as fh:
            header = fh.read(part.header_bytes) if part.header_bytes and part.byte_start > 0 else b""
            fh.seek(part.byte_start)
            data = header + fh.read(part.byte_stop - part.byte_start)
    table = read_table(data, name=path.name, max_bytes=max(len(data), 1) + 1).df
    if part.n_rows >= 0 and len(table) != part.n_rows:
        raise CoreError(f"{path.name}: rows {part.start_row + 1}-{part.start_row + part.n_rows} read as "
                        f"{len(table)} rows instead of {part.n_rows}")
    return table


# ---- scoring one part ----------------------------------------------------------------------------
def score_part(model, part: Part, options: Options):
    """(scored table, report) of one part. Rows with a value the model must not see (text in a number
    column, outside the plausible range, an unknown code) are kept with an empty risk and a ``problem``
    naming column and rule (never the value), and listed in the report; missing values are imputed as
    ``predict`` does. Raises CoreError when the part cannot be read or lacks model columns."""
    import numpy as np


    table = read_part(part)
    features = model.schema.feature_names
    _check_columns(Path(part.file).name, table.columns, features)
    table.columns = [str(c) for c in table.columns]
    n = len(table)
    checked, problems = check_features(table, model.schema)
    for name in checked.columns:  # the checked values: markers like "?" missing, numbers as numbers
        table[name] = checked[name].to_numpy()
    bad = np.zeros(n, dtype=bool)
    why = [[] for _ in range(n)]
    bad_rows, missing_counts = [], {}
    for p in problems:
        if p.rule == "missing":
            missing_counts[p.column] = missing_counts.get(p.column, 0) + p.count
            continue
        for r in p.rows:  # 1-based rows of the part
            bad[r - 1] = True
            why[r - 1].append(f"{p.column}: {p.rule}")
            if len(bad_rows) < MAX_BAD_ROWS_LISTED:
                bad_rows.append({"file": part.file, "row": part.start_row + r, "column": p.column, "rule": p.rule,
                                 "detail": p.detail})
    good = table[~bad]
    scored = score_table(model, good, with_reasons=options.reasons, top=options.top, lang=options.lang,
                         with_shap=options.shap, n_threads=1, precision=options.precision)
    out = table.copy()
    new_columns = [c for c in scored.columns if c not in table.columns]
    for c in new_columns:  # a bad row: no risk, no band, no reasons (empty, not a guess)
        values = scored[c].to_numpy()
        numeric = values.dtype.kind in "fiu"
        column = np.full(n, np.nan) if numeric else np.full(n, None, dtype=object)
        column[~bad] = values if numeric else values.astype(object)
        out[c] = column
    out["problem"] = ["; ".join(w) for w in why]
    out.insert(0, "source_row", np.arange(part.start_row + 1, part.start_row + n + 1, dtype=np.int64))
    out.insert(0, "source_file", part.file)
    report = {"part": part.id, "file": part.file, "rows": n, "scored": int(n - bad.sum()), "bad": int(bad.sum()),
              "bad_rows": bad_rows, "missing_imputed": missing_counts}
    return _parquet_safe(out), report


def _parquet_safe(df):
    """Columns Parquet can hold the same way in every part: text columns as text (a column mixing
    numbers and text, or all empty in one part, would otherwise change type between parts)."""
    import pandas as pd
    for c in df.columns:
        if df[c].dtype == object or isinstance(df[c].dtype, pd.StringDtype):
            df[c] = df[c].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
            df[c] = df[c].astype(object)
    return df


def write_part(df, output: Path, part: Part) -> dict:
    """Write a part atomically: a hidden temporary file in the output folder, fsync, rename. Readers see
    the whole part or none (Parquet readers skip names starting with '.')."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    target = output / part.filename
    tmp = output / f".{part.filename}.tmp-{uuid.uuid4().hex}"
    try:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp, compression="zstd")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"path": part.filename, "sha256": digest, "columns": list(map(str, df.columns))}


def run_part(model, part: Part, options: Options, output: Path) -> dict:
    """Score and write one part; a part that cannot be read becomes a report with its error (the file
    is bad), never an exception that would stop the job."""
    t0, started, cpu, thread_cpu = time.perf_counter(), time.time(), time.process_time(), time.thread_time()
    try:
        df, report = score_part(model, part, options)
        report.update(write_part(df, output, part))
        report["error"] = None
    except CoreError as exc:
        report = {"part": part.id, "file": part.file, "rows": 0, "scored": 0, "bad": 0, "bad_rows": [],
                  "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - never a traceback with patient values in it: the type names the fault
        report = {"part": part.id, "file": part.file, "rows": 0, "scored": 0, "bad": 0, "bad_rows": [],
                  "error": f"internal error while scoring ({type(exc).__name__})"}
    report["seconds"] = time.perf_counter() - t0
    report["cpu_s"] = time.process_time() - cpu  # this process's CPU time: the rate per core on a busy machine
    # This thread's alone: the scoring itself, without what the process's other threads (a Ray worker's
    # own: gRPC, event loop, metrics) used meanwhile.
    report["thread_cpu_s"] = time.thread_time() - thread_cpu
    # Wall-clock start and end (for the job's steady rate across workers) and the worker's own memory.
    report["started_at"], report["ended_at"] = started, time.time()
    report["worker_pid"] = os.getpid()
    report["worker_peak_rss_mb"] = _peak_rss_mb()
    report["worker_tensorflow"] = "tensorflow" in sys.modules  # a worker scores in numpy: expected False
    return report


def _peak_rss_mb() -> float | None:
    """This process's resident-memory high-water mark (VmHWM), where /proc has it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


# ---- the bundle, shipped to workers --------------------------------------------------------------
def bundle_files(directory) -> tuple[dict[str, bytes], dict]:
    """The bundle's files as bytes (metadata.json and every file it lists) and its identity: name,
    creation time and the SHA-256 of metadata.json (which holds every other file's SHA-256)."""
    directory = Path(directory)
    meta_path = directory / "metadata.json"
    if not directory.is_dir() or not meta_path.is_file():
        raise CoreError(f"--model: {directory} is not a model bundle (metadata.json is missing)")
    raw = meta_path.read_bytes()
    try:
        meta = json.loads(raw)
        listed = list((meta.get("files") or {}).keys())
        features = [f["name"] for f in meta["schema"]["features"] if f.get("role", "feature") == "feature"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CoreError(f"--model: {directory}: metadata.json is not a bundle's") from None
    files = {"metadata.json": raw}
    for name in listed:
        if "/" in name or "\\" in name or name.startswith("."):
            raise CoreError(f"--model: {directory}: metadata.json lists a file outside the bundle")
        try:
            files[name] = (directory / name).read_bytes()
        except OSError:
            raise CoreError(f"--model: {directory}: {name} is missing") from None
    identity = {"path": str(directory.resolve()), "name": meta.get("name"), "created_utc": meta.get("created_utc"),
                "sha256": hashlib.sha256(raw).hexdigest(), "features": features}
    return files, identity


def load_shipped_bundle(files: dict[str, bytes], metadata_sha256: str):
    """Write the shipped files into a private folder and load them with every check of load_bundle.

    Without Keras (``keras=False``): the weights are read as arrays after the same checks, and risk and
    SHAP run in numpy, so a worker never imports TensorFlow (it was most of an actor's start-up: 10-40 s
    each on this shared machine, and ~600 MB of its memory)."""
    if hashlib.sha256(files["metadata.json"]).hexdigest() != metadata_sha256:
        raise CoreError("the model's metadata.json arrived changed on this worker")
    folder = Path(tempfile.mkdtemp(prefix="heart-bundle-"))
    try:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return load_bundle(folder, keras=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class PartScorer:
    """The callable class Ray Data runs in an actor pool: the bundle is loaded once per actor."""

    def __init__(self, bundle: dict, metadata_sha256: str, options: dict, output: str):
        t0 = time.perf_counter()
        self.model = load_shipped_bundle(bundle, metadata_sha256)
        self.options = Options(**options)
        self.output = Path(output)
        # The actor's start-up, for the job's timings: its process's start, the bundle load, when ready.
        self.startup = {"actor_process_started_at": _process_started_at(),
                        "actor_load_s": round(time.perf_counter() - t0, 3), "actor_ready_at": time.time()}

    def __call__(self, batch: dict) -> dict:
        import numpy as np
        reports = []
        for text in batch["part"]:
            part = Part(**json.loads(str(text)))
            report = run_part(self.model, part, self.options, self.output)
            reports.append(json.dumps({**report, **self.startup}))
        return {"report": np.array(reports, dtype=object)}


def _process_started_at() -> float | None:
    """This process's start (Unix time) from /proc, where there is one: with the actor's ready time, how
    long a worker took to start (Ray's worker start, imports, bundle load)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


# ---- the job -------------------------------------------------------------------------------------
def _job_key(model_identity: dict, inputs: list[dict], options: Options, part_rows: int) -> str:
    """What must match for a rerun to reuse written parts: the model, the inputs' bytes, the options."""
    key = {"model": model_identity["sha256"], "inputs": [(i["file"], i["sha256"]) for i in inputs],
           "options": asdict(options), "part_rows": part_rows}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _write_manifest(output: Path, manifest: dict) -> None:
    tmp = output / f".{MANIFEST}.tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1, ensure_ascii=False, allow_nan=False, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, output / MANIFEST)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_manifest(output) -> dict | None:
    path = Path(output) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise CoreError(f"--output: {path} is not readable JSON; choose a new output directory") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise CoreError(f"--output: {path} is not a scoring manifest; choose a new output directory")
    return manifest


def read_scores(output):
    """The scored rows of an output folder, in input order, from the parts its manifest lists."""
    import pandas as pd
    manifest = read_manifest(output)
    if manifest is None:
        raise CoreError(f"{output}: no {MANIFEST}")
    written = sorted(r["path"] for r in manifest["parts"].values() if r.get("path") and not r.get("error"))
    frames = [pd.read_parquet(Path(output) / name) for name in written]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def score(model_dir, inputs: list[str], output, options: Options | None = None, *, engine: str = "local",
          address: str | None = None, workers: int | None = None, part_rows: int = PART_ROWS,
          progress: Callable[[dict], None] | None = None) -> ScoreResult:
    """Score every row of the inputs into ``output`` (Parquet parts + manifest.json); see the module
    docstring. engine: "inline" (this process), "local" (a Ray instance on this machine, ``workers``
    actors, default one per core) or "ray" (an existing cluster at ``address`` or $RAY_ADDRESS)."""
    options = options or Options()
    if engine not in ("inline", "local", "ray"):
        raise CoreError(f"--engine {engine!r}: use local or ray")
    if engine == "ray":
        address = address or os.environ.get("RAY_ADDRESS")
        if not address:
            raise CoreError("--engine ray needs --address (or $RAY_ADDRESS): the cluster to run on")
    if workers is not None and workers < 1:
        raise CoreError("--workers must be at least 1")
    started = time.perf_counter()
    started_utc = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    bundle, identity = bundle_files(model_dir)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise CoreError(f"--output {output} is a file; give a directory")
    previous = read_manifest(output) if output.exists() else None
    if output.exists() and previous is None and any(output.iterdir()):
        raise CoreError(f"--output {output} exists, is not empty and holds no {MANIFEST}; choose a new directory")
    files, bad_files = expand_inputs(inputs)
    # An output folder inside an input folder: its parts are results, not patients to score again.
    files = [f for f in files if output.resolve() not in f.parents]
    if not files:
        detail = "; ".join(f"{b['file']}: {b['error']}" for b in bad_files) or "none given"
        raise CoreError(f"--input: nothing to score ({detail})")
    parts, input_info, bad_planned = plan_parts(files, identity["features"], part_rows)
    bad_files += bad_planned
    key = _job_key(identity, input_info, options, part_rows)
    if previous is not None and previous.get("job_key") != key:
        raise CoreError(f"--output {output} holds the result of another job (a different model, inputs or options); "
                        "choose a new directory")
    output.mkdir(parents=True, exist_ok=True)
    for stale in output.glob(".*.tmp-*"):  # temporary files of a run that was killed
        stale.unlink(missing_ok=True)

    done: dict[str, dict] = {}
    if previous is not None:
        for pid, report in (previous.get("parts") or {}).items():
            path = output / report.get("path", "") if report.get("path") else None
            if report.get("error") is None and path is not None and path.is_file() \
                    and sha256_file(path) == report.get("sha256"):
                done[pid] = report
    skipped = sum(1 for p in parts if p.id in done)
    todo = [p for p in parts if p.id not in done]
    plan_s = time.perf_counter() - started

    manifest = {
        "format": MANIFEST_FORMAT, "version": 1, "job_key": key, "complete": False,
        "model": {k: v for k, v in identity.items() if k != "features"},
        "options": asdict(options), "part_rows": part_rows,
        "inputs": input_info, "bad_files": bad_files,
        "engine": {"name": engine, "address": address if engine == "ray" else None},
        "started_utc": (previous or {}).get("started_utc") or started_utc,
        "parts_planned": len(parts), "parts": dict(done),
    }
    _write_manifest(output, manifest)
    state = {"last_write": time.perf_counter(), "rows": 0}
    t_score = time.perf_counter()

    def record(report: dict) -> None:
        manifest["parts"][report["part"]] = report
        state["rows"] += report.get("rows", 0)
        now = time.perf_counter()
        if now - state["last_write"] >= _MANIFEST_EVERY_S:
            _write_manifest(output, manifest)
            state["last_write"] = now
        if progress is not None:
            elapsed = now - t_score
            progress({"parts_done": len(manifest["parts"]), "parts": len(parts), "rows_done": state["rows"],
                      "rows_per_s": state["rows"] / elapsed if elapsed > 0 else None})

    used_workers = 1
    if todo:
        if engine == "inline":
            model = load_shipped_bundle(bundle, identity["sha256"])
            for part in todo:
                record(run_part(model, part, options, output))
        else:
            used_workers = _run_ray(todo, bundle, identity["sha256"], options, output, engine, address, workers, record)
    score_s = time.perf_counter() - t_score
    _finish(manifest, parts, bad_files, used_workers, engine, plan_s, score_s, time.perf_counter() - started,
            state["rows"])
    _write_manifest(output, manifest)
    return ScoreResult(output=output, manifest=manifest, skipped_parts=skipped)


def _finish(manifest: dict, parts: list[Part], bad_files: list[dict], workers: int, engine: str,
            plan_s: float, score_s: float, total_s: float, scored_now: int) -> None:
    reports = manifest["parts"]
    failed = {}
    for r in reports.values():
        if r.get("error"):
            failed.setdefault(r["file"], r["error"])
    listed = {b["file"] for b in bad_files}
    bad_files += [{"file": f, "error": e} for f, e in failed.items() if f not in listed]
    written = [r for r in reports.values() if not r.get("error")]
    rows = sum(r["rows"] for r in written)
    columns = next((r["columns"] for r in sorted(written, key=lambda r: r["part"])), [])
    manifest.update({
        "complete": all(p.id in reports for p in parts),
        "finished_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "rows": {"total": rows, "scored": sum(r["scored"] for r in written), "bad": sum(r["bad"] for r in written)},
        "bad_rows": [b for r in sorted(written, key=lambda r: r["part"]) for b in r["bad_rows"]],
        "columns": columns,
        "parts_written": len(written), "parts_failed": len(reports) - len(written),
        "timings": {"plan_s": round(plan_s, 3), "score_s": round(score_s, 3), "total_s": round(total_s, 3),
                    "rows_per_s_this_run": round(scored_now / score_s, 1) if score_s > 0 and scored_now else None},
    })
    manifest["engine"]["workers"] = workers
    if engine != "inline":
        import ray
        manifest["engine"]["ray_version"] = ray.__version__


def _run_ray(parts: list[Part], bundle: dict, metadata_sha256: str, options: Options, output: Path, engine: str,
             address: str | None, workers: int | None, record: Callable[[dict], None]) -> int:
    """The parts through Ray Data: map_batches with PartScorer in an actor pool of ``workers`` actors."""
    # Only part descriptions and reports travel through the object store: ray_session's small one will do.
    with ray_session(engine, address, workers):
        return _run_ray_data(parts, bundle, metadata_sha256, options, output, workers, record)


def _run_ray_data(parts: list[Part], bundle: dict, metadata_sha256: str, options: Options, output: Path,
                  workers: int | None, record: Callable[[dict], None]) -> int:
    import logging

    import ray
    import ray.data

    try:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(workers or cpus, len(parts)))
        items = [{"part": json.dumps(asdict(p))} for p in parts]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(PartScorer, batch_size=1, compute=ray.data.ActorPoolStrategy(size=n), num_cpus=1,
                            fn_constructor_kwargs={"bundle": bundle, "metadata_sha256": metadata_sha256,
                                                   "options": asdict(options), "output": str(output)})
        seen = set()
        for row in ds.iter_rows():
            report = json.loads(row["report"])
            if report["part"] in seen:  # a retried part's second report: its file was rewritten, not added
                continue
            seen.add(report["part"])
            record(report)
        return n
    except Exception as exc:
        if isinstance(exc, CoreError):
            raise
        message = str(exc).strip().splitlines()
        cause = next((line for line in message if "Error:" in line and "Traceback" not in line),
                     message[0] if message else "")
        raise CoreError(f"the Ray job failed ({type(exc).__name__}: {cause[:300]})") from None


def print_progress(info: dict) -> None:
    rate = info.get("rows_per_s")
    print(f"parts {info['parts_done']}/{info['parts']}, rows {info['rows_done']:,}"
          + (f", {rate:,.0f} rows/s" if rate else ""), file=sys.stderr, flush=True)


__all__ = ["MANIFEST", "PART_ROWS", "Options", "Part", "PartScorer", "ScoreResult", "bundle_files", "expand_inputs",
           "load_shipped_bundle", "plan_parts", "read_manifest", "read_part", "read_scores", "score", "score_part"]
