"""The project's own error types: what a user did wrong, said in words, never a traceback; and how a
message names rows (``format_rows``), which every layer uses."""


class CoreError(Exception):
    """Base of every error the engine reports to a person (UI message, CLI exit code 2)."""


class CohortError(CoreError, ValueError):
    """A cohort file or table cannot be used: says which column, rows and rule."""


class BundleError(CoreError):
    """A model bundle cannot be saved or loaded (not ours, tampered, unsafe, missing files)."""


class PatientError(CoreError, ValueError):
    """One patient's values cannot be scored (outside a plausible range, unknown code, missing)."""


def format_rows(positions, limit: int = 6) -> str:
    """Row numbers as a person counts them (1 = first data row), compressed into ranges."""
    rows = [int(p) + 1 for p in positions]
    if not rows:
        return ""
    ranges, start, prev = [], rows[0], rows[0]
    for r in rows[1:]:
        if r == prev + 1:
            prev = r
            continue
        ranges.append((start, prev))
        start = prev = r
    ranges.append((start, prev))
    parts = [f"{a}" if a == b else f"{a}–{b}" for a, b in ranges]
    text = ", ".join(parts[:limit])
    if len(parts) > limit:
        text += f", … ({len(rows)} rows)"
    return text
