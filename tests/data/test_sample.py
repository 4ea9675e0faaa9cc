"""The demo sample's fetcher (resstream.data.sample): every source layout, sha256 checks that name the
bad file, archives damaged or cut short, a download over a local HTTP server, offline, and the
temporary folder an interrupted fetch leaves.  The archives are built here in the upstream layout
(one top folder, flat files, README.md and gallery.md) from tiny images with their own manifest."""

import hashlib
import http.server
import io
import re
import socket
import threading
import urllib.error
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from resstream.data import sample
from resstream.cli import main
from resstream.data.sample import SampleError, fetch_sample

TOP = f"imagenet-sample-images-{sample.SAMPLE_COMMIT}"
NAMES = ["n01440764/n01440764_tench.JPEG", "n01443537/n01443537_goldfish.JPEG",
         "n02966687/n02966687_carpenter's_kit.JPEG", "n03590841/n03590841_jack-o'-lantern.JPEG"]


@pytest.fixture(autouse=True)
def only_samples_made_here(tmp_path, monkeypatch):
    """No test here reads a sample it did not make: a user's clone has nothing beside it, and the
    workplace's ../shared must never stand in for a test's own data.  Every ../shared candidate the
    module computes (for itself or for a test) must lie in the test's tmp_path, else the test fails
    naming it."""
    computed = sample.shared_candidates

    def inside_tmp_path():
        found = computed()
        outside = [str(p) for p in found if not Path(p).resolve().is_relative_to(tmp_path.resolve())]
        assert not outside, f"a ../shared candidate outside this test's tmp_path: {outside}"
        return found

    monkeypatch.setattr(sample, "shared_candidates", inside_tmp_path)


def jpeg_bytes(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32 + i, 24), (40 * i, 255 - 40 * i, 90)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {name: jpeg_bytes(i) for i, name in enumerate(NAMES)}


@pytest.fixture(scope="module")
def manifest(files) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def upstream_zip(path: Path, files: dict[str, bytes], replace: dict[str, bytes] | None = None, drop=()) -> Path:
    """A zip laid out like GitHub's archive of the upstream repository."""
    replace = replace or {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{TOP}/", "")
        z.writestr(f"{TOP}/README.md", "# imagenet-sample-images\n")
        z.writestr(f"{TOP}/gallery.md", "gallery\n")
        for name, data in files.items():
            if name not in drop:
                z.writestr(f"{TOP}/{Path(name).name}", replace.get(name, data))
    return path


def write_folder(root: Path, files: dict[str, bytes], flat: bool) -> Path:
    for name, data in files.items():
        target = root / (Path(name).name if flat else name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def assert_is_sample(dest: Path, files: dict[str, bytes]):
    found = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert found == sorted(files)
    for name, data in files.items():
        assert (dest / name).read_bytes() == data


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def fetch(dest, manifest, **kw):
    kw.setdefault("environ", {})
    kw.setdefault("candidates", [])
    kw.setdefault("progress", False)
    return fetch_sample(dest, manifest=manifest, **kw)


# -- the shipped manifest -----------------------------------------------------------------------------


def test_shipped_manifest_lists_1000_class_folder_files_with_sha256():
    entries = sample.load_manifest()
    assert len(entries) == 1000
    for name, digest in entries.items():
        folder, file = name.split("/")
        assert re.fullmatch(r"n\d{8}", folder) and file.startswith(folder + "_") and file.endswith(".JPEG"), name
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert len({name.split("/")[1] for name in entries}) == 1000  # a flat source maps one to one


# -- sources --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flat", [False, True], ids=["class-folders", "flat"])
def test_a_folder_source_in_either_layout_gives_class_folders(tmp_path, files, manifest, flat):
    source = write_folder(tmp_path / "src", files, flat)
    (source / "README.md").write_text("not part of the sample")
    dest = fetch(tmp_path / "data" / "imagenet-sample", manifest, environ={"RESSTREAM_SAMPLE": str(source)})
    assert_is_sample(dest, files)
    assert leftovers(tmp_path / "data") == ["imagenet-sample"]


def test_upstream_zip_from_the_environment_is_unpacked_into_class_folders(tmp_path, files, manifest, capsys):
    archive = upstream_zip(tmp_path / "upstream.zip", files)
    dest = fetch(tmp_path / "data" / "imagenet-sample", manifest, environ={"RESSTREAM_SAMPLE": str(archive)}, progress=True)
    assert_is_sample(dest, files)
    progress = capsys.readouterr().err.splitlines()
    assert progress[-1] == f"verifying and copying from RESSTREAM_SAMPLE={archive}: 4/4 files"
    assert leftovers(tmp_path / "data") == ["imagenet-sample"]


def test_the_environment_comes_before_the_shared_folder(tmp_path, files, manifest):
    env_source = write_folder(tmp_path / "env", files, flat=True)
    shared = write_folder(tmp_path / "shared", {n: b"other bytes" for n in files}, flat=False)
    dest = fetch(tmp_path / "d", manifest, environ={"RESSTREAM_SAMPLE": str(env_source)}, candidates=[shared])
    assert_is_sample(dest, files)
    # without the variable the first existing candidate is used (and its wrong bytes refused)
    with pytest.raises(SampleError, match=re.escape(f"{NAMES[0]} in {shared} has sha256")):
        fetch(tmp_path / "d2", manifest, candidates=[tmp_path / "absent", shared])


def test_shared_candidates_look_beside_the_working_folder_and_the_checkout(tmp_path, monkeypatch, files, manifest):
    """Samples made here, in ../shared/data/imagenet-sample beside a working folder and beside a
    checkout both made here: the working folder's is the first candidate and is fetched from, the
    checkout's comes second.  The module is pointed into that checkout, so no candidate lies outside
    tmp_path (the workplace's own ../shared is never looked at)."""
    work, checkout = tmp_path / "a" / "work", tmp_path / "b" / "checkout"
    work.mkdir(parents=True)
    (checkout / "resstream" / "data").mkdir(parents=True)
    (checkout / "Snakefile").write_text("# a checkout\n")
    beside_work = write_folder(tmp_path / "a" / "shared" / "data" / "imagenet-sample", files, flat=False)
    beside_checkout = write_folder(tmp_path / "b" / "shared" / "data" / "imagenet-sample", files, flat=True)
    monkeypatch.chdir(work)
    monkeypatch.setattr(sample, "__file__", str(checkout / "resstream" / "data" / "sample.py"))
    candidates = sample.shared_candidates()
    assert candidates == [beside_work.resolve(), beside_checkout.resolve()]
    dest = fetch(tmp_path / "d", manifest, candidates=candidates)
    assert_is_sample(dest, files)


# -- damaged sources: one line naming the file, nothing left behind -------------------------------------


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def refusal(tmp_path, manifest, archive) -> str:
    """The one-line SampleError of fetching the sample from ``archive`` into tmp_path/data."""
    with pytest.raises(SampleError) as info:
        fetch(tmp_path / "data" / "imagenet-sample", manifest, source=archive)
    return one_line(info)


def test_a_corrupted_file_in_the_zip_is_named_and_nothing_is_left(tmp_path, files, manifest):
    bad = bytearray(files[NAMES[2]])
    bad[200] ^= 0xFF
    archive = upstream_zip(tmp_path / "bad.zip", files, replace={NAMES[2]: bytes(bad)})
    (tmp_path / "data").mkdir()
    message = refusal(tmp_path, manifest, archive)
    assert message.startswith(f"{NAMES[2]} in {archive} has sha256 {hashlib.sha256(bad).hexdigest()[:16]}")
    assert "Fix:" in message
    assert leftovers(tmp_path / "data") == []


def test_a_zip_whose_stored_bytes_were_damaged_fails_its_crc_naming_the_file(tmp_path, files, manifest):
    archive = upstream_zip(tmp_path / "crc.zip", files)
    raw = bytearray(archive.read_bytes())
    at = raw.index(files[NAMES[1]]) + 300  # inside the stored (uncompressed) member
    raw[at] ^= 0xFF
    archive.write_bytes(bytes(raw))
    assert refusal(tmp_path, manifest, archive).startswith(f"{NAMES[1]} in {archive} cannot be read (Bad CRC-32")
    assert leftovers(tmp_path / "data") == []


def test_a_zip_cut_short_is_refused_in_one_line(tmp_path, files, manifest):
    whole = upstream_zip(tmp_path / "whole.zip", files).read_bytes()
    archive = tmp_path / "short.zip"
    archive.write_bytes(whole[: len(whole) // 2])
    assert refusal(tmp_path, manifest, archive).startswith(f"{archive} is not a complete zip archive")
    assert leftovers(tmp_path / "data") == []


def test_a_missing_file_is_named(tmp_path, files, manifest):
    archive = upstream_zip(tmp_path / "partial.zip", files, drop=[NAMES[3]])
    assert refusal(tmp_path, manifest, archive).startswith(f"{NAMES[3]} is missing from {archive}")


def test_a_source_that_is_neither_folder_nor_zip_is_named(tmp_path, manifest):
    with pytest.raises(SampleError, match="RESSTREAM_SAMPLE=/no/such/place is neither a folder nor a zip file"):
        fetch(tmp_path / "d", manifest, environ={"RESSTREAM_SAMPLE": "/no/such/place"})


# -- an existing sample, interrupted fetches ------------------------------------------------------------


def test_an_existing_sample_is_verified_and_never_replaced(tmp_path, files, manifest):
    dest = write_folder(tmp_path / "imagenet-sample", files, flat=False)
    assert fetch(dest, manifest, source="/no/such/source") == dest  # the source is not even looked at
    (dest / NAMES[0]).write_bytes(b"edited")
    with pytest.raises(SampleError) as info:
        fetch(dest, manifest, source=write_folder(tmp_path / "src", files, flat=True))
    assert one_line(info).startswith(f"{dest / NAMES[0]} differs from the sample's manifest")
    assert (dest / NAMES[0]).read_bytes() == b"edited"


def test_an_interrupted_fetch_leaves_no_folder_that_looks_done(tmp_path, files, manifest, monkeypatch):
    source = write_folder(tmp_path / "src", files, flat=True)
    real_copy = sample._copy_verified
    copied = []

    def copy_then_interrupt(src, name, digest, target, size=None):
        if len(copied) == 2:
            raise KeyboardInterrupt
        real_copy(src, name, digest, target, size)
        copied.append(name)

    monkeypatch.setattr(sample, "_copy_verified", copy_then_interrupt)
    parent = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        fetch(parent / "imagenet-sample", manifest, source=source)
    assert leftovers(parent) == []
    # a killed fetch (no clean-up at all) leaves only a .partial-PID folder, removed by the next fetch
    (parent / "imagenet-sample.partial-999999" / "n01440764").mkdir(parents=True)
    monkeypatch.setattr(sample, "_copy_verified", real_copy)
    assert_is_sample(fetch(parent / "imagenet-sample", manifest, source=source), files)
    assert leftovers(parent) == ["imagenet-sample"]


def test_a_live_fetchs_partial_folder_is_left_alone(tmp_path, files, manifest):
    """A partial folder is stale only when its fetch is gone: a live PID on this host, or any PID
    on another host (named in its owner file), keeps it."""
    import subprocess
    import sys

    source = write_folder(tmp_path / "src", files, flat=True)
    parent = tmp_path / "data"
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = parent / f"imagenet-sample.partial-{alive.pid}"
        elsewhere = parent / "imagenet-sample.partial-999998"
        dead = parent / "imagenet-sample.partial-999999"
        for partial in (live, elsewhere, dead):
            (partial / "n01440764").mkdir(parents=True)
        (elsewhere / sample.OWNER_NAME).write_text("another-host.example")
        assert_is_sample(fetch(parent / "imagenet-sample", manifest, source=source), files)
        assert leftovers(parent) == sorted(["imagenet-sample", live.name, elsewhere.name])
    finally:
        alive.kill()
        alive.wait()


FETCH_SLOWLY = """
import json, sys, time
from resstream.data import sample
from resstream.cli import main

manifest = json.loads(open(sys.argv[1]).read())
sample.load_manifest = lambda path=None: dict(manifest)
real_copy = sample._copy_verified

def copy_slowly(*args):
    time.sleep(0.05)  # long enough for the other fetch to start while this one assembles
    real_copy(*args)

sample._copy_verified = copy_slowly
sys.exit(main(["fetch-sample", "--dest", sys.argv[2], "--source", sys.argv[3]]))
"""


def test_two_fetches_at_once_both_end_with_the_verified_sample(tmp_path):
    """The second fetch starts while the first assembles: neither removes the other's partial
    folder, the first publishes, the second finds the first's sample and verifies it."""
    import json
    import subprocess
    import sys
    import time

    many = {f"n{i:08d}/n{i:08d}_unit.JPEG": jpeg_bytes(i % 6) + bytes([i]) for i in range(40)}
    (tmp_path / "manifest.json").write_text(json.dumps({n: hashlib.sha256(b).hexdigest() for n, b in many.items()}))
    (tmp_path / "fetch.py").write_text(FETCH_SLOWLY)
    archive = upstream_zip(tmp_path / "up.zip", many)
    dest = tmp_path / "data" / "imagenet-sample"
    command = [sys.executable, str(tmp_path / "fetch.py"), str(tmp_path / "manifest.json"), str(dest), str(archive)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(dest.parent.glob("imagenet-sample.partial-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for proc in (first, second):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out == f"{dest}: the 40-image sample, every file verified (sha256)\n"
    assert_is_sample(dest, many)
    assert leftovers(dest.parent) == ["imagenet-sample"]


def test_the_published_folder_is_the_one_verified(tmp_path, files, manifest, monkeypatch):
    """A folder that appears at dest while the fetch assembles (another fetch, a user) is verified
    instead of the fetch's own: a wrong file in it is named, and nothing is replaced."""
    source = write_folder(tmp_path / "src", files, flat=True)
    dest = tmp_path / "data" / "imagenet-sample"
    real_assemble = sample._assemble

    def assemble_while_another_publishes(*args):
        real_assemble(*args)
        write_folder(dest, {**files, NAMES[1]: b"not the goldfish"}, flat=False)

    monkeypatch.setattr(sample, "_assemble", assemble_while_another_publishes)
    with pytest.raises(SampleError) as info:
        fetch(dest, manifest, source=source)
    assert one_line(info).startswith(f"{dest / NAMES[1]} differs from the sample's manifest")
    assert (dest / NAMES[1]).read_bytes() == b"not the goldfish"
    assert leftovers(dest.parent) == ["imagenet-sample"]


def test_a_member_larger_than_its_upstream_size_is_cut_off_at_that_size(tmp_path, files, manifest, monkeypatch):
    bloated = files[NAMES[2]] + bytes(5 << 20)
    archive = upstream_zip(tmp_path / "bloated.zip", files, replace={NAMES[2]: bloated})
    read = {}
    real_open = sample.ZipSource.open

    def counting_open(self, name):
        stream = real_open(self, name)
        real_read = stream.read

        def counted(n=-1):
            block = real_read(n)
            read[name] = read.get(name, 0) + len(block)
            return block

        stream.read = counted
        return stream

    monkeypatch.setattr(sample.ZipSource, "open", counting_open)
    sizes = {name: len(data) for name, data in files.items()}
    with pytest.raises(SampleError) as info:
        fetch(tmp_path / "data" / "imagenet-sample", manifest, source=archive, sizes=sizes)
    assert one_line(info) == (f"{NAMES[2]} in {archive} is larger than the upstream file's {sizes[NAMES[2]]} bytes: a "
                              f"damaged or different file (its extraction was stopped there). Fix: use a fresh copy of "
                              f"{sample.SAMPLE_URL}")
    assert read[NAMES[2]] == sizes[NAMES[2]] + 1
    assert leftovers(tmp_path / "data") == []


def test_shipped_sizes_cover_the_manifest():
    sizes = sample.load_sizes()
    assert list(sizes) == list(sample.load_manifest())
    assert all(1000 < size < 2_000_000 for size in sizes.values())


def test_an_absolute_path_member_does_not_hide_the_sample(tmp_path, files, manifest):
    archive = upstream_zip(tmp_path / "extra.zip", files)
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr(zipfile.ZipInfo("/tmp/planted.txt"), "planted")
        z.writestr(zipfile.ZipInfo("../escaped.txt"), "escaped")
    dest = fetch(tmp_path / "data" / "imagenet-sample", manifest, source=archive)
    assert_is_sample(dest, files)
    assert not (tmp_path / "escaped.txt").exists()


# -- download -------------------------------------------------------------------------------------------


class _ArchiveHandler(http.server.BaseHTTPRequestHandler):
    body = b""
    announce = None  # Content-Length to claim (defaults to the body's)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(self.announce or len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """``serve(body, announce=None)`` -> URL of a one-file HTTP server on 127.0.0.1."""
    servers = []

    def start(body: bytes, announce: int | None = None) -> str:
        handler = type("Handler", (_ArchiveHandler,), {"body": body, "announce": announce})
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/{sample.SAMPLE_COMMIT}.zip"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_download_shows_progress_and_gives_the_verified_sample(tmp_path, files, manifest, serve, capsys):
    url = serve(upstream_zip(tmp_path / "up.zip", files).read_bytes())
    dest = fetch(tmp_path / "data" / "imagenet-sample", manifest, url=url, progress=True)
    assert_is_sample(dest, files)
    err = capsys.readouterr().err.splitlines()
    size = (tmp_path / "up.zip").stat().st_size
    assert f"downloading {url}: {size / 1e6:.1f} MB of {size / 1e6:.1f} MB" in err
    assert err[-1] == f"verifying and copying from {url}: 4/4 files"
    assert leftovers(tmp_path / "data") == ["imagenet-sample"]  # the downloaded zip went with the partial folder


def test_a_download_cut_short_is_refused(tmp_path, files, manifest, serve):
    body = upstream_zip(tmp_path / "up.zip", files).read_bytes()
    url = serve(body[:1000], announce=len(body))
    with pytest.raises(SampleError) as info:
        fetch(tmp_path / "data" / "imagenet-sample", manifest, url=url)
    assert one_line(info).startswith(f"the download of {url} was cut short (1000 of {len(body)} bytes)")
    assert leftovers(tmp_path / "data") == []


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_with_no_source_names_the_variable_and_the_url(tmp_path, manifest):
    url = f"http://127.0.0.1:{closed_port()}/archive.zip"
    with pytest.raises(SampleError) as info:
        fetch(tmp_path / "data" / "imagenet-sample", manifest, url=url)
    message = one_line(info)
    assert "RESSTREAM_SAMPLE is not set" in message and f"the download of {url} failed" in message
    assert "Connection refused" in message and "Fix: set RESSTREAM_SAMPLE" in message
    assert leftovers(tmp_path / "data") == []


# -- the command ----------------------------------------------------------------------------------------


@pytest.fixture
def tiny_manifest(monkeypatch, manifest):
    monkeypatch.setattr(sample, "load_manifest", lambda path=None: dict(manifest))
    monkeypatch.delenv("RESSTREAM_SAMPLE", raising=False)
    monkeypatch.setattr(sample, "shared_candidates", lambda: [])


def test_fetch_sample_command_from_a_zip(tmp_path, files, tiny_manifest, capsys):
    archive = upstream_zip(tmp_path / "up.zip", files)
    dest = tmp_path / "data" / "imagenet-sample"
    assert main(["fetch-sample", "--dest", str(dest), "--source", str(archive)]) == 0
    assert_is_sample(dest, files)
    assert capsys.readouterr().out == f"{dest}: the 4-image sample, every file verified (sha256)\n"


def test_fetch_sample_command_offline_says_one_line_with_status_2(tmp_path, tiny_manifest, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(sample.urllib.request, "urlopen", no_network)
    assert main(["fetch-sample", "--dest", str(tmp_path / "data" / "imagenet-sample")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "resstream: no source for the demo sample: RESSTREAM_SAMPLE is not set, there is no "
        f"../shared/data/imagenet-sample and the download of {sample.SAMPLE_URL} failed (Temporary failure in "
        "name resolution). Fix: set RESSTREAM_SAMPLE to a folder of the sample or to that zip, downloaded on a "
        "connected machine\n"
    )
    assert leftovers(tmp_path / "data") == []
    assert sample.SAMPLE_URL == ("https://github.com/EliSchwartz/imagenet-sample-images/archive/"
                                 "bc69043e2862758a1906c6a24a792bb28c6bb2ff.zip")


def test_fetch_sample_into_an_existing_file_is_one_line(tmp_path, files, tiny_manifest, capsys):
    archive = upstream_zip(tmp_path / "up.zip", files)
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert main(["fetch-sample", "--dest", str(target), "--source", str(archive)]) == 2
    assert capsys.readouterr().err == (f"resstream: {target} is a file, not a folder; nothing was changed. Fix: give "
                                       f"--dest a folder that does not exist yet (e.g. data/imagenet-sample)\n")
    assert target.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "up.zip"]
