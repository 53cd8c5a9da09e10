"""The project's own error types: what a user did wrong, said in words, never a traceback."""


class CoreError(Exception):
    """Base of every error the engine reports to a person (UI message, CLI exit code 2)."""


class CohortError(CoreError, ValueError):
    """A cohort file or table cannot be used: says which column, rows and rule."""


class BundleError(CoreError):
    """A model bundle cannot be saved or loaded (not ours, tampered, unsafe, missing files)."""


class PatientError(CoreError, ValueError):
    """One patient's values cannot be scored (outside a plausible range, unknown code, missing)."""
