"""Model bundles as zip files: packed for download, unpacked safely from an upload.

An uploaded zip is hostile until proven otherwise. :func:`extract_bundle_zip` writes nothing outside its
target directory and refuses, before extracting anything: absolute paths and ``..`` (zip slip), symlinks
and other non-regular entries, encrypted entries, duplicate names, more than ``max_files`` files, more
than ``max_bytes`` declared uncompressed, and entries whose compression ratio is that of a zip bomb.
The declared sizes are not trusted: extraction counts the bytes it actually writes and stops at the
limits. What comes out is then a directory for :func:`core.model.load_bundle`, which checks the hashes
and loads Keras in safe mode.
"""
from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from core.errors import BundleError

MAX_FILES = 20
MAX_BYTES = 50 * 2**20
MAX_RATIO = 200  # a bundle's JSON compresses ~10x; a bomb compresses ~1000x
_RATIO_FLOOR = 1 << 20  # small entries may compress well (a 40 kB JSON of zeros); ratio checks start at 1 MB
_CHUNK = 1 << 16
BUNDLE_MARKER = "metadata.json"


def _safe_name(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The entry's relative path, or None for a directory entry; BundleError when it is unsafe."""
    raw = info.filename
    if "\x00" in raw:
        raise BundleError("the zip has an entry name with a NUL byte")
    name = raw.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise BundleError(f"the zip has an absolute path ({raw!r}); refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise BundleError(f"the zip has a path leaving its folder ({raw!r}); refused")
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        raise BundleError(f"the zip has a symbolic link ({raw!r}); refused")
    if info.is_dir():
        return None
    if kind not in (0, stat.S_IFREG):
        raise BundleError(f"the zip has an entry that is not a regular file ({raw!r}); refused")
    if not parts:
        raise BundleError(f"the zip has an entry without a name ({raw!r}); refused")
    return PurePosixPath(*parts)


def check_zip(zf: zipfile.ZipFile, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES,
              max_ratio: float = MAX_RATIO) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Every file entry with its safe relative path; BundleError naming the first rule broken."""
    entries, seen, total = [], set(), 0
    infos = zf.infolist()
    if len(infos) > max_files * 4:  # directory entries included; a bundle has a handful
        raise BundleError(f"the zip has {len(infos)} entries; a model bundle has at most {max_files} files")
    for info in infos:
        path = _safe_name(info)
        if path is None:
            continue
        if info.flag_bits & 0x1:
            raise BundleError(f"the zip entry {info.filename!r} is encrypted; refused")
        key = str(path).lower()  # case-insensitive file systems would merge these
        if key in seen:
            raise BundleError(f"the zip has the file {info.filename!r} twice; refused")
        seen.add(key)
        entries.append((info, path))
        if len(entries) > max_files:
            raise BundleError(f"the zip has more than {max_files} files; a model bundle has fewer")
        total += info.file_size
        if total > max_bytes:
            raise BundleError(f"the zip unpacks to more than {max_bytes / 2**20:.0f} MB; refused")
        if info.file_size > _RATIO_FLOOR and info.file_size > max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise BundleError(f"the zip entry {info.filename!r} is compressed {ratio:.0f}:1 "
                              f"(more than {max_ratio:.0f}:1 looks like a zip bomb); refused")
    if not entries:
        raise BundleError("the zip is empty")
    return entries


def extract_bundle_zip(source, dest, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES,
                       max_ratio: float = MAX_RATIO) -> Path:
    """Unpack a zipped bundle into the (empty or new) directory ``dest``; return the bundle's directory.

    ``source``: bytes, a path or a binary file object. The bundle may sit at the zip's top level or in
    one folder (as made by zipping the bundle's directory).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise BundleError("the folder to unpack the zip into is not empty")
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise BundleError("the upload is not a readable zip file") from None
    root = dest.resolve()
    with zf:
        entries = check_zip(zf, max_files, max_bytes, max_ratio)
        written = 0
        for info, path in entries:
            target = (root / path).resolve()
            if root not in target.parents:  # belt and braces after _safe_name
                raise BundleError(f"the zip entry {info.filename!r} leaves its folder; refused")
            target.parent.mkdir(parents=True, exist_ok=True)
            size = 0
            try:
                # O_EXCL: never follow or overwrite something already there
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
                with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                    while chunk := src.read(_CHUNK):
                        size += len(chunk)
                        written += len(chunk)
                        # The header may lie about sizes: count what really comes out.
                        if size > info.file_size or written > max_bytes:
                            raise BundleError("the zip unpacks to more than it declares; refused")
                        if size > _RATIO_FLOOR and size > max_ratio * max(info.compress_size, 1):
                            raise BundleError(f"the zip entry {info.filename!r} looks like a zip bomb; refused")
                        out.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
                raise BundleError(f"the zip entry {info.filename!r} cannot be read ({type(exc).__name__})") from None
    return _bundle_dir(root)


def _bundle_dir(root: Path) -> Path:
    if (root / BUNDLE_MARKER).is_file():
        return root
    children = [p for p in root.iterdir()]
    if len(children) == 1 and children[0].is_dir() and (children[0] / BUNDLE_MARKER).is_file():
        return children[0]
    raise BundleError(f"the zip holds no model bundle ({BUNDLE_MARKER} is missing at its top level)")


def bundle_to_zip(bundle_dir) -> bytes:
    """The files of a bundle directory as a zip (flat, no folders), for download."""
    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / BUNDLE_MARKER).is_file():
        raise BundleError(f"{bundle_dir.name} is not a model bundle")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in bundle_dir.iterdir() if p.is_file() and not p.is_symlink()):
            zf.write(path, arcname=path.name)
    return buffer.getvalue()
