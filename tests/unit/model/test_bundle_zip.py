"""Uploaded model zips: refused when hostile, unpacked when they are a bundle, round trip with a real model."""
import io
import os
import stat
import warnings
import zipfile

import numpy as np
import pytest

from core.model import MAX_BYTES, MAX_FILES, bundle_to_zip, check_zip, extract_bundle_zip
from core.errors import BundleError

BUNDLE_FILES = {"metadata.json": b'{"format": "heart-risk-bundle"}', "model.keras": b"PK-not-really",
                "preprocess.json": b"{}"}


def make_zip(entries) -> bytes:
    """entries: (ZipInfo or name, bytes)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names on purpose
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for info, data in entries:
                zf.writestr(info, data)
    return buffer.getvalue()


def bundle_entries(prefix=""):
    return [(prefix + name, data) for name, data in BUNDLE_FILES.items()]


def entry(name, mode=stat.S_IFREG | 0o644):
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def test_limits_are_the_documented_ones():
    assert MAX_FILES == 20
    assert MAX_BYTES == 50 * 2**20


def test_a_flat_bundle_zip_is_unpacked(tmp_path):
    out = extract_bundle_zip(make_zip(bundle_entries()), tmp_path / "x")
    assert out == (tmp_path / "x").resolve()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == BUNDLE_FILES


def test_a_bundle_inside_one_folder_is_found(tmp_path):
    out = extract_bundle_zip(make_zip(bundle_entries("heart-mlp-v1/")), tmp_path / "x")
    assert out.name == "heart-mlp-v1"
    assert (out / "metadata.json").read_bytes() == BUNDLE_FILES["metadata.json"]


@pytest.mark.parametrize("name", ["../evil.json", "a/../../evil.json", "..\\evil.json"])
def test_paths_leaving_the_folder_are_refused_and_nothing_is_written(tmp_path, name):
    data = make_zip(bundle_entries() + [(entry(name), b"x")])
    with pytest.raises(BundleError, match="leaving its folder"):
        extract_bundle_zip(data, tmp_path / "x")
    assert not (tmp_path / "evil.json").exists()
    assert not any((tmp_path / "x").iterdir())  # refused before anything was extracted


@pytest.mark.parametrize("name", ["/etc/evil.json", "C:/evil.json", "\\evil.json"])
def test_absolute_paths_are_refused(tmp_path, name):
    # zipfile strips leading slashes when writing: put the name back into the archive bytes
    info = entry("a" * len(name))
    data = make_zip(bundle_entries() + [(info, b"x")]).replace(b"a" * len(name), name.encode())
    with pytest.raises(BundleError, match="absolute path"):
        extract_bundle_zip(data, tmp_path / "x")


def test_symlinks_are_refused(tmp_path):
    data = make_zip(bundle_entries() + [(entry("link", stat.S_IFLNK | 0o777), b"/etc/passwd")])
    with pytest.raises(BundleError, match="symbolic link"):
        extract_bundle_zip(data, tmp_path / "x")


@pytest.mark.parametrize("kind", [stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK])
def test_non_regular_entries_are_refused(tmp_path, kind):
    data = make_zip(bundle_entries() + [(entry("device", kind | 0o600), b"")])
    with pytest.raises(BundleError, match="not a regular file"):
        extract_bundle_zip(data, tmp_path / "x")


def test_more_than_twenty_files_are_refused(tmp_path):
    data = make_zip(bundle_entries() + [(f"extra{i}.txt", b"x") for i in range(MAX_FILES)])
    with pytest.raises(BundleError, match="more than 20 files"):
        extract_bundle_zip(data, tmp_path / "x")


def test_twenty_files_are_accepted(tmp_path):
    data = make_zip(bundle_entries() + [(f"extra{i}.txt", b"x") for i in range(MAX_FILES - len(BUNDLE_FILES))])
    assert extract_bundle_zip(data, tmp_path / "x").is_dir()


def test_too_many_declared_bytes_are_refused(tmp_path):
    data = make_zip(bundle_entries() + [("big.bin", os.urandom(3000))])
    with pytest.raises(BundleError, match="unpacks to more than"):
        extract_bundle_zip(data, tmp_path / "x", max_bytes=2000)


def test_a_compression_bomb_is_refused(tmp_path):
    data = make_zip(bundle_entries() + [("zeros.bin", bytes(8 * 2**20))])
    assert len(data) < 100_000  # 8 MB of zeros in a few kB
    with pytest.raises(BundleError, match="zip bomb"):
        extract_bundle_zip(data, tmp_path / "x")


def test_encrypted_entries_are_refused(tmp_path):
    data = make_zip(bundle_entries())
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.infolist()[0].flag_bits |= 0x1
        with pytest.raises(BundleError, match="encrypted"):
            check_zip(zf)


def test_duplicate_names_are_refused(tmp_path):
    data = make_zip(bundle_entries() + [("metadata.json", b"{}")])
    with pytest.raises(BundleError, match="twice"):
        extract_bundle_zip(data, tmp_path / "x")


def test_a_zip_without_a_bundle_is_refused(tmp_path):
    with pytest.raises(BundleError, match="metadata.json"):
        extract_bundle_zip(make_zip([("notes.txt", b"hello")]), tmp_path / "x")


def test_not_a_zip_is_refused(tmp_path):
    with pytest.raises(BundleError, match="not a readable zip"):
        extract_bundle_zip(b"hello, I am a CSV", tmp_path / "x")


def test_a_non_empty_target_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(BundleError, match="not empty"):
        extract_bundle_zip(make_zip(bundle_entries()), tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def real_bundle(tmp_path_factory):
    from core.data import cohort_from_frame
    from core.data import demo_cohort
    from core.model import TrainConfig, save_bundle
    from core.workflow import train_on_cohort
    from core.data import cleveland_schema

    cohort = cohort_from_frame(demo_cohort(n=120, seed=3), cleveland_schema(), name="demo")
    result = train_on_cohort(cohort, TrainConfig(epochs=3))
    bundle = save_bundle(result.model, tmp_path_factory.mktemp("store") / "bundle", result.metrics,
                         cohort.fingerprint, "zip-test")
    return bundle, result.model, cohort


def test_a_real_bundle_survives_zip_and_unzip(tmp_path, real_bundle):
    """Saved, zipped, unpacked and loaded: the hashes verify and the risks are identical."""
    from core.model import load_bundle
    bundle, model, cohort = real_bundle
    data = bundle_to_zip(bundle)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == sorted(p.name for p in bundle.iterdir())
    loaded = load_bundle(extract_bundle_zip(data, tmp_path / "unpacked"))
    np.testing.assert_array_equal(loaded.predict_risk(cohort.df), model.predict_risk(cohort.df))


def test_a_file_edited_inside_the_zip_is_caught_by_the_bundle_hashes(tmp_path, real_bundle):
    from core.model import load_bundle
    bundle, _, _ = real_bundle
    entries = []
    for path in sorted(bundle.iterdir()):
        data = path.read_bytes()
        if path.name == "preprocess.json":
            data = data.replace(b'"fill"', b'"fill" ', 1)  # same JSON meaning, other bytes
        entries.append((path.name, data))
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(extract_bundle_zip(make_zip(entries), tmp_path / "x"))


def test_zipping_a_folder_that_is_not_a_bundle_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BundleError, match="not a model bundle"):
        bundle_to_zip(tmp_path)
