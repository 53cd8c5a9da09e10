"""The UCI Cleveland heart-disease file, fetched from the UCI archive when the machine is online.

The bytes go through the same reader and validator as an upload (:func:`core.data.load_cohort`), so a
fetched file is checked exactly like one a clinician brings. Offline (no route, DNS failure, timeout) is
a normal situation for a hospital workstation: it is a :class:`~core.errors.CohortError` with a message
that says so, never a traceback.
"""
from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request

from core.data.cohort import Cohort, load_cohort
from core.data.read import read_table
from core.errors import CohortError

UCI_CLEVELAND_URL = ("https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease/"
                     "processed.cleveland.data")
URL_ENV = "HEART_RISK_UCI_URL"  # a hospital mirror of the file (and the tests' local server)
UCI_NAME = "UCI Cleveland heart disease (processed.cleveland.data)"
TIMEOUT_S = 5.0
MAX_BYTES = 2 * 2**20  # the real file is 18 kB; anything far larger is not it


class OfflineError(CohortError):
    """The archive could not be reached (no network, DNS, timeout, refused)."""


def cleveland_url() -> str:
    """The address to fetch: $HEART_RISK_UCI_URL when set, else the UCI archive."""
    return os.environ.get(URL_ENV) or UCI_CLEVELAND_URL


def fetch_bytes(url: str | None = None, timeout: float = TIMEOUT_S, max_bytes: int = MAX_BYTES) -> bytes:
    """GET ``url`` with a short timeout; OfflineError when unreachable, CohortError for a bad answer."""
    url = url or cleveland_url()
    if not url.lower().startswith(("https://", "http://")):
        raise CohortError("only http(s) addresses can be fetched")
    request = urllib.request.Request(url, headers={"User-Agent": "heart-risk-dashboard"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise CohortError(f"the UCI archive answered HTTP {exc.code} for the Cleveland file") from None
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        kind = "timed out" if isinstance(reason, (socket.timeout, TimeoutError)) else "is unreachable"
        raise OfflineError(f"the UCI archive {kind} (this computer seems to be offline): use the demo "
                           "cohort or upload the file") from None
    if len(data) > max_bytes:
        raise CohortError(f"the download is larger than {max_bytes / 2**20:.0f} MB; it is not the Cleveland file")
    return data


def fetch_cleveland(url: str | None = None, timeout: float = TIMEOUT_S) -> Cohort:
    """Download and validate the Cleveland file (header-less, '?' = missing, disease = num > 0)."""
    data = fetch_bytes(url, timeout)
    if not read_table(data, name=UCI_NAME).uci_format:
        raise CohortError("the downloaded file is not in the UCI processed.cleveland.data layout (14 columns, no header)")
    return load_cohort(data, name=UCI_NAME)
