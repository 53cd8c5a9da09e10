"""Fetching the UCI Cleveland file: a local HTTP server stands in for the archive (this machine is offline)."""
import functools
import http.server
import socket
import threading
import time

import pytest

from core.data import load_cohort
from core.data import demo_cohort
from core.errors import CohortError
from core.data import URL_ENV, UCI_CLEVELAND_URL, OfflineError, cleveland_url, fetch_bytes, fetch_cleveland


def uci_format_bytes() -> bytes:
    """The demo cohort written like processed.cleveland.data: no header, '?' for missing, num as an integer."""
    df = demo_cohort()
    lines = []
    for row in df.itertuples(index=False):
        cells = ["?" if v != v else (str(int(v)) if name == "num" else f"{v:.1f}") for name, v in zip(df.columns, row)]
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode("ascii")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """http://127.0.0.1:<port>/ serving the Cleveland-format file and a CSV with a header."""
    root = tmp_path_factory.mktemp("archive")
    (root / "processed.cleveland.data").write_bytes(uci_format_bytes())
    (root / "other.csv").write_text("a,b,outcome\n" + "\n".join(f"{i},{i % 3},{i % 2}" for i in range(30)))
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_default_address_is_the_uci_archive(monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    assert cleveland_url() == UCI_CLEVELAND_URL
    assert UCI_CLEVELAND_URL.startswith("https://archive.ics.uci.edu/")
    assert UCI_CLEVELAND_URL.endswith("/heart-disease/processed.cleveland.data")


def test_a_fetched_file_is_read_like_an_upload(archive):
    cohort = fetch_cleveland(f"{archive}/processed.cleveland.data")
    upload = load_cohort(uci_format_bytes(), name="upload")
    assert cohort.read.uci_format and not cohort.read.has_header
    assert cohort.n == upload.n == 303
    assert cohort.fingerprint == upload.fingerprint
    assert not cohort.synthetic
    assert cohort.schema.target == "num" and cohort.schema.positive_rule == "> 0"
    assert [p.message for p in cohort.problems] == [p.message for p in upload.problems]


def test_the_address_can_come_from_the_environment(archive, monkeypatch):
    monkeypatch.setenv(URL_ENV, f"{archive}/processed.cleveland.data")
    assert fetch_cleveland().n == 303


def test_an_unreachable_archive_says_offline_quickly():
    started = time.perf_counter()
    with pytest.raises(OfflineError, match="offline"):
        fetch_bytes(f"http://127.0.0.1:{closed_port()}/processed.cleveland.data", timeout=2)
    assert time.perf_counter() - started < 10


def test_an_archive_that_never_answers_times_out():
    with socket.socket() as silent:  # accepts connections (backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(OfflineError, match="timed out"):
            fetch_bytes(f"http://127.0.0.1:{port}/processed.cleveland.data", timeout=0.5)


def test_a_missing_file_is_an_http_error(archive):
    with pytest.raises(CohortError, match="HTTP 404"):
        fetch_cleveland(f"{archive}/nothing-here.data")


def test_a_file_in_another_layout_is_refused(archive):
    with pytest.raises(CohortError, match="layout"):
        fetch_cleveland(f"{archive}/other.csv")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.invalid/x"])
def test_only_http_addresses_are_fetched(url):
    with pytest.raises(CohortError, match="http"):
        fetch_bytes(url)


def test_an_oversized_answer_is_refused(archive):
    with pytest.raises(CohortError, match="larger than"):
        fetch_bytes(f"{archive}/processed.cleveland.data", max_bytes=1000)
