"""The demo's 1,000-image sample (one ImageNet image per class), fetched and verified.

The sample is the upstream repository EliSchwartz/imagenet-sample-images at a pinned commit.  It
is put under ``data/imagenet-sample/`` in class folders (``nXXXXXXXX/nXXXXXXXX_name.JPEG``, the
layout the workflow reads) from the first source that exists:

1. ``RESSTREAM_SAMPLE`` (or an explicit ``source``): a folder in either layout (class folders, or
   the upstream's flat files), or a zip of the upstream repository;
2. ``../shared/data/imagenet-sample`` beside the checkout or the working folder;
3. the upstream archive, downloaded (:data:`SAMPLE_URL`).

Whatever the source, every file is checked against the sha256 manifest shipped with the package
(``manifests/imagenet-sample.sha256``, ``sha256sum`` format, made once from the upstream bytes);
a wrong or missing file stops the fetch with one line naming it, and no file is written past its
upstream size (``manifests/imagenet-sample.sizes``), so a bloated archive member fails early.  The
sample is assembled in ``{dest}.partial-PID/`` and renamed into place when complete, so an
interrupted fetch never leaves a folder that looks done.  Two fetches into one ``dest`` at once
leave each other's partial folders alone (one is removed only when its process is gone); whichever
publishes second finds the first's sample and verifies it.  Only the standard library is used: the
command starts fast.
"""

from __future__ import annotations

import glob
import hashlib
import http.client
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from resstream.base.errors import UserError
from resstream.base.output_place import check_output_place
from resstream.base.outputs import partial_dir, publish_dir

SAMPLE_COMMIT = "bc69043e2862758a1906c6a24a792bb28c6bb2ff"
SAMPLE_URL = f"https://github.com/EliSchwartz/imagenet-sample-images/archive/{SAMPLE_COMMIT}.zip"
MANIFEST_PATH = Path(__file__).resolve().parent.parent / "manifests" / "imagenet-sample.sha256"
SIZES_PATH = MANIFEST_PATH.with_suffix(".sizes")  # "BYTES  NAME" per file, the upstream sizes
ENV_VAR = "RESSTREAM_SAMPLE"
DEFAULT_DEST = Path("data") / "imagenet-sample"
SHARED_SAMPLE = Path("..") / "shared" / "data" / "imagenet-sample"
DOWNLOAD_NAME = ".download.zip"  # inside the partial folder, so a killed fetch's leftovers go with it
OWNER_NAME = ".owner"  # inside the partial folder: the host of the process whose PID ends its name
BLOCK = 1 << 20


class SampleError(UserError, RuntimeError):
    """The sample cannot be fetched or verified; the message names the file or source and the fix."""


# -- manifest ---------------------------------------------------------------------------------------


def load_manifest(path: str | os.PathLike = MANIFEST_PATH) -> dict[str, str]:
    """``{relative path: sha256}`` from a ``sha256sum``-format file, in file order."""
    manifest = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                digest, name = line.rstrip("\n").split("  ", 1)
                manifest[name] = digest
    return manifest


def load_sizes(path: str | os.PathLike = SIZES_PATH) -> dict[str, int]:
    """``{relative path: size in bytes}`` of the upstream files (a file of ``BYTES  NAME`` lines)."""
    with open(path, encoding="utf-8") as f:
        return {name: int(size) for size, name in (line.rstrip("\n").split("  ", 1) for line in f if line.strip())}


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()


# -- progress ---------------------------------------------------------------------------------------


class Progress:
    """One line rewritten in place on a terminal; elsewhere (logs, CI) a line per tenth done."""

    def __init__(self, label: str, total: int | None, unit: str = "files", stream=None):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.next_tenth, self.last_draw = 1, 0.0

    def _text(self, done: int) -> str:
        if self.unit == "bytes":
            size = f"{done / 1e6:.1f} MB" + (f" of {self.total / 1e6:.1f} MB" if self.total else "")
        else:
            size = f"{done}/{self.total} {self.unit}"
        return f"{self.label}: {size}"

    def update(self, done: int) -> None:
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw >= 0.1 or done == self.total:
                self.stream.write("\r" + self._text(done))
                self.stream.flush()
                self.last_draw = now
            return
        # unknown total (a download without Content-Length): a line every 10 MB
        tenth = done * 10 // self.total if self.total else done // (10 * BLOCK)
        if tenth >= self.next_tenth:
            self.stream.write(self._text(done) + "\n")
            self.next_tenth = tenth + 1

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


# -- sources ----------------------------------------------------------------------------------------


class FolderSource:
    """A folder in class layout (``nX/nX_name.JPEG``) or the upstream's flat one (``nX_name.JPEG``)."""

    def __init__(self, root: Path):
        self.root = root
        self.label = str(root)

    def open(self, name: str) -> BinaryIO | None:
        for candidate in (self.root / name, self.root / Path(name).name):
            if candidate.is_file():
                return open(candidate, "rb")
        return None

    def close(self) -> None:
        pass


class ZipSource:
    """A zip of the upstream repository: one top folder holding the flat files (a zip of a
    class-folder copy, or one without the top folder, works too)."""

    def __init__(self, path: Path, label: str | None = None):
        self.label = label or str(path)
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise SampleError(
                f"{self.label} is not a complete zip archive ({exc}): cut short or damaged. "
                f"Fix: download it again ({SAMPLE_URL})"
            ) from None
        # absolute or ../ members are never extracted, and must not hide the top folder of the rest
        names = [i.filename for i in self.zip.infolist() if not i.is_dir() and _inside_archive(i.filename)]
        tops = {n.split("/", 1)[0] for n in names}
        strip = len(tops) == 1 and all("/" in n for n in names)
        self.members = {(n.split("/", 1)[1] if strip else n): n for n in names}

    def open(self, name: str) -> BinaryIO | None:
        member = self.members.get(name) or self.members.get(Path(name).name)
        return self.zip.open(member) if member else None

    def close(self) -> None:
        self.zip.close()


def _inside_archive(name: str) -> bool:
    return not name.startswith(("/", "\\")) and ".." not in name.replace("\\", "/").split("/") and ":" not in name


def open_source(path: str | os.PathLike, label: str | None = None):
    path = Path(path)
    if path.is_dir():
        return FolderSource(path)
    if path.is_file():
        return ZipSource(path, label)
    raise SampleError(
        f"{label or path} is neither a folder nor a zip file. Fix: point {ENV_VAR} (or --source) at a "
        f"folder of the sample or at a zip of {SAMPLE_URL}"
    )


def shared_candidates() -> list[Path]:
    """``../shared/data/imagenet-sample`` beside the working folder and beside this checkout."""
    places = [Path.cwd()]
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "Snakefile").is_file():  # a checkout, not an installed package
        places.append(checkout)
    found = []
    for place in places:
        candidate = (place / SHARED_SAMPLE).resolve()
        if candidate not in found:
            found.append(candidate)
    return found


# -- download ---------------------------------------------------------------------------------------


def download(url: str, target: Path, progress: bool = True, timeout: float = 60) -> None:
    """Save ``url`` to ``target``; raises ``OSError`` (``URLError``) when offline, and
    :class:`SampleError` when the transfer ends before the announced size."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length else None
        meter = Progress(f"downloading {url}", total, "bytes") if progress else None
        done = 0
        try:
            for block in iter(lambda: response.read(BLOCK), b""):
                out.write(block)
                done += len(block)
                if meter:
                    meter.update(done)
        except http.client.IncompleteRead as exc:  # the connection closed early
            done += len(exc.partial)
        if meter:
            meter.close()
    if total is not None and done < total:
        raise SampleError(f"the download of {url} was cut short ({done} of {total} bytes). Fix: run the fetch again")


def _no_source_error(url: str, reason: str) -> SampleError:
    return SampleError(
        f"no source for the demo sample: {ENV_VAR} is not set, there is no {SHARED_SAMPLE.as_posix()} and "
        f"the download of {url} failed ({reason}). Fix: set {ENV_VAR} to a folder of the sample or "
        f"to that zip, downloaded on a connected machine"
    )


# -- assembling -------------------------------------------------------------------------------------


def _copy_verified(source, name: str, digest: str, target: Path, size: int | None = None) -> None:
    """Copy one manifest file from ``source`` to ``target`` while hashing it; a file longer than
    ``size`` bytes is refused before more than ``size + 1`` of its bytes are written."""
    stream = source.open(name)
    if stream is None:
        raise SampleError(
            f"{name} is missing from {source.label}. Fix: use a complete copy of the sample "
            f"(a folder or a zip of {SAMPLE_URL})"
        )
    h = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with stream, open(target, "wb") as out:
            written = 0
            while block := stream.read(BLOCK if size is None else min(BLOCK, size + 1 - written)):
                written += len(block)
                h.update(block)
                out.write(block)
                if size is not None and written > size:
                    raise SampleError(
                        f"{name} in {source.label} is larger than the upstream file's {size} bytes: a damaged or "
                        f"different file (its extraction was stopped there). Fix: use a fresh copy of {SAMPLE_URL}")
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise SampleError(f"{name} in {source.label} cannot be read ({exc}): the archive is damaged. "
                          f"Fix: download it again ({SAMPLE_URL})") from None
    if h.hexdigest() != digest:
        raise SampleError(
            f"{name} in {source.label} has sha256 {h.hexdigest()[:16]}…, not the manifest's {digest[:16]}…: "
            f"a damaged or different file. Fix: replace it with the upstream file (or use a fresh copy of "
            f"{SAMPLE_URL})"
        )


def _assemble(source, manifest: dict[str, str], sizes: dict[str, int], folder: Path, progress: bool) -> None:
    meter = Progress(f"verifying and copying from {source.label}", len(manifest)) if progress else None
    try:
        for i, (name, digest) in enumerate(manifest.items(), start=1):
            _copy_verified(source, name, digest, folder / name, sizes.get(name))
            if meter:
                meter.update(i)
    finally:
        source.close()
        if meter:
            meter.close()


def verify_folder(folder: str | os.PathLike, manifest: dict[str, str] | None = None) -> None:
    """Raise :class:`SampleError` naming the first file of ``folder`` that is missing or wrong."""
    folder = Path(folder)
    manifest = load_manifest() if manifest is None else manifest
    for name, digest in manifest.items():
        path = folder / name
        fix = f"Fix: delete {folder} and fetch it again (resstream fetch-sample --dest {folder})"
        if not path.is_file():
            raise SampleError(f"{path} is missing: {folder} is not the complete sample. {fix}")
        if _sha256_file(path) != digest:
            raise SampleError(f"{path} differs from the sample's manifest (sha256). {fix}")


def _pick_source(source, environ, candidates: Iterable[Path]) -> tuple[str | None, str | None]:
    """(path, label) of the first local source, or (None, None): download."""
    if source is not None:
        return str(source), str(source)
    if environ.get(ENV_VAR):
        return environ[ENV_VAR], f"{ENV_VAR}={environ[ENV_VAR]}"
    for candidate in candidates:
        if candidate.is_dir():
            return str(candidate), str(candidate)
    return None, None


# -- the partial folder, shared with other fetches into the same dest -----------------------------------


def _owner_alive(partial: Path) -> bool:
    """Whether the fetch building ``partial`` (``{dest}.partial-PID``) may still be running: its
    PID is alive on this host, or it was started on another host (whose PIDs cannot be seen)."""
    try:
        pid = int(partial.name.rsplit("-", 1)[1])
        host = (partial / OWNER_NAME).read_text().strip()
    except ValueError:
        return False
    except OSError:  # no owner file (yet): made here a moment ago, or by a killed fetch
        host = socket.gethostname()
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _remove_dead_partials(dest: Path) -> None:
    """Delete ``{dest}.partial-PID`` folders that killed fetches left; a live fetch's is kept."""
    for partial in glob.glob(glob.escape(str(dest)) + ".partial-*"):
        if not _owner_alive(Path(partial)):
            shutil.rmtree(partial, ignore_errors=True)


def _new_partial(dest: Path) -> Path:
    """A fresh ``{dest}.partial-PID`` folder holding its owner's host name."""
    if dest.exists() and not dest.is_dir():
        raise SampleError(f"{dest} is a file, not a folder; nothing was changed. Fix: give --dest a folder "
                          f"that does not exist yet (e.g. {DEFAULT_DEST})")
    check_output_place(dest, "--dest")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_partials(dest)
        tmp = Path(partial_dir(str(dest)))
        (tmp / OWNER_NAME).write_text(socket.gethostname())
    except OSError as exc:
        raise SampleError(f"cannot create the sample's folder beside {dest} ({exc.strerror or exc}). Fix: give "
                          f"--dest a folder in a place you can write to") from None
    return tmp


def _publish(tmp: Path, dest: Path, manifest: dict[str, str]) -> None:
    """Rename ``tmp`` to ``dest``, then verify what ``dest`` holds: when a concurrent fetch
    published first, its sample is the one verified (and ``tmp`` is dropped)."""
    (tmp / DOWNLOAD_NAME).unlink(missing_ok=True)
    (tmp / OWNER_NAME).unlink(missing_ok=True)
    try:
        publish_dir(str(tmp), str(dest), SampleError(f"{dest} appeared while the sample was fetched; delete one of them"))
    except (SampleError, OSError):  # OSError: the other fetch renamed its folder between the check and ours
        if not (dest.is_dir() and any(dest.iterdir())):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    verify_folder(dest, manifest)


def fetch_sample(
    dest: str | os.PathLike = DEFAULT_DEST,
    source: str | os.PathLike | None = None,
    *,
    manifest: dict[str, str] | None = None,
    sizes: dict[str, int] | None = None,
    environ: dict | None = None,
    candidates: Iterable[Path] | None = None,
    url: str | None = None,
    progress: bool = True,
    fetch: Callable[[str, Path, bool], None] | None = None,
) -> Path:
    """Put the verified sample at ``dest`` (see the module docstring for the sources); returns
    ``dest``.  An existing ``dest`` is verified, never replaced.  ``sizes`` (``{name: bytes}``,
    default :func:`load_sizes`) caps each file; ``url`` and ``fetch`` (the downloader) default to
    :data:`SAMPLE_URL` and :func:`download`."""
    dest, url, fetch = Path(dest), url or SAMPLE_URL, fetch or download
    manifest = load_manifest() if manifest is None else manifest
    sizes = load_sizes() if sizes is None else sizes
    if dest.is_dir() and any(dest.iterdir()):
        verify_folder(dest, manifest)
        return dest
    environ = os.environ if environ is None else environ
    path, label = _pick_source(source, environ, shared_candidates() if candidates is None else candidates)
    local = open_source(path, label) if path is not None else None  # a bad source is named before any write
    tmp = None
    try:
        tmp = _new_partial(dest)
        if local is None:
            try:
                fetch(url, tmp / DOWNLOAD_NAME, progress)
            except OSError as exc:  # URLError, timeouts, refused connections
                raise _no_source_error(url, str(getattr(exc, "reason", exc))) from None
            local = open_source(tmp / DOWNLOAD_NAME, url)
        _assemble(local, manifest, sizes, tmp, progress)
        _publish(tmp, dest, manifest)
    except BaseException:
        if local is not None:
            local.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
