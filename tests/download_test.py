"""Downloading the IDX archives: from a loopback HTTP server serving small hand-made archives, into
torchvision's layout, verified by sha256; refusals, fallbacks between mirrors and time bounds."""

import base64
import contextlib
import gzip
import hashlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from aejax.config import DataConfig
from aejax.data import download, http_get
from aejax.data.datasets import load_dataset, load_tfds
from aejax.errors import DataError, UserError
from support import REPO, run_script_here

SIZES = {"train": 30, "t10k": 10}


def _archives(truncate: str | None = None) -> dict[str, bytes]:
    """The four archives of a tiny hand-made dataset; `truncate`: that one's IDX is cut short."""
    rng = np.random.default_rng(0)
    archives = {}
    for name in download.ARCHIVES:
        stem = name.removesuffix(".gz")
        count = SIZES[stem.split("-")[0]]
        shape = (count, 28, 28) if "images" in stem else (count,)
        raw = _idx_bytes(rng.integers(0, 256 if "images" in stem else 10, shape))
        archives[name] = gzip.compress(raw[:-5] if name == truncate else raw, mtime=0)
    return archives


def _idx_bytes(array) -> bytes:
    array = np.asarray(array, np.uint8)
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    return header + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()


def _sha256s(archives: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(body).hexdigest() for name, body in archives.items()}


ARCHIVES = _archives()
CHECKSUMS = _sha256s(ARCHIVES)


class Server:
    """A loopback HTTP server: `files` maps a path to the bytes served there; any other path is a
    404. A path in `stall` sends its headers and half its body, then goes silent; one in
    `trickle` sends a byte every 20 ms; one in `loop` redirects to itself."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.stall: set[str] = set()
        self.trickle: set[str] = set()
        self.loop: set[str] = set()
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []
        self.release = threading.Event()  # ends every stall, so the server can stop
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def serve(self, prefix: str, archives: dict[str, bytes]) -> str:
        """Serve `archives` under `prefix`; the base URL that holds them."""
        self.files.update({f"/{prefix}{name}": body for name, body in archives.items()})
        return self.url + prefix

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                server.authorizations.append(self.headers.get("Authorization"))
                if self.path in server.loop:
                    self.send_response(302)
                    self.send_header("Location", self.path)
                    self.end_headers()
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.stall:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    server.release.wait(30)
                    return
                if self.path in server.trickle:
                    for byte in range(len(body)):
                        if server.release.wait(0.02):
                            return
                        self.wfile.write(body[byte : byte + 1])
                        self.wfile.flush()
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def server():
    running = Server()
    serve = running.httpd.serve_forever
    thread = threading.Thread(target=serve, args=(0.02,), daemon=True)
    thread.start()
    yield running
    running.release.set()
    running.httpd.shutdown()
    running.httpd.server_close()


def _closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def _silent_server():
    """A socket that accepts connections (the kernel does) but never answers a request."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}/"


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _config(root: Path, mirror: str, **changes) -> DataConfig:
    changes = {"dataset": "mnist", "source": "download", **changes}
    return DataConfig(data_dir=str(root), mirror=mirror, **changes)


def test_download_lands_in_torchvision_layout_and_loads(server, tmp_path):
    data = load_dataset(_config(tmp_path, server.serve("", ARCHIVES)), checksums=CHECKSUMS)
    raw = tmp_path / "MNIST" / "raw"
    assert data.source == f"idx:{raw}"
    assert _files(tmp_path) == sorted(f"MNIST/raw/{name}" for name in download.ARCHIVES)
    for name, body in ARCHIVES.items():
        assert (raw / name).read_bytes() == body
    assert data.train_images.shape == (30, 784) and data.test_labels.shape == (10,)
    expected = np.frombuffer(gzip.decompress(ARCHIVES["train-images-idx3-ubyte.gz"])[16:], np.uint8)
    np.testing.assert_array_equal(data.train_images.reshape(-1), expected)


def test_auto_downloads_only_what_is_missing(server, tmp_path):
    config = _config(tmp_path, server.serve("", ARCHIVES), source="auto")
    first = load_dataset(config, checksums=CHECKSUMS)
    assert len(server.requests) == 4
    second = load_dataset(config, checksums=CHECKSUMS)  # found locally now
    assert len(server.requests) == 4 and second.source == first.source
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").unlink()
    load_dataset(config, checksums=CHECKSUMS)  # the three verified archives are kept
    assert server.requests[4:] == ["/train-images-idx3-ubyte.gz"]


@pytest.mark.parametrize("wrong", ["t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz"])
def test_a_checksum_mismatch_names_both_digests_and_leaves_nothing(server, tmp_path, wrong):
    registered = {**CHECKSUMS, wrong: "0" * 64}
    root = tmp_path / "data"
    with pytest.raises(DataError) as info:
        load_dataset(_config(root, server.serve("", ARCHIVES)), checksums=registered)
    message = str(info.value)
    assert f"could not download {wrong}: " in message and "\n" not in message
    assert f"has sha256 {CHECKSUMS[wrong]}, not the registered {'0' * 64}" in message
    assert info.value.settings == ("mirror",)
    assert not root.exists()  # no archive, no temporary file, not even the folders made for them


def test_an_http_error_or_wrong_bytes_on_one_mirror_falls_through_to_the_next(server, tmp_path):
    wrong_bytes = {"t10k-images-idx3-ubyte.gz": b"<html>not an archive</html>"}
    bad = server.serve("bad/", wrong_bytes)  # and 404 for the other three
    good = server.serve("good/", ARCHIVES)
    download.fetch_archives(tmp_path, [bad, good], CHECKSUMS)
    assert _files(tmp_path) == sorted(download.ARCHIVES)
    assert sorted(p for p in server.requests if p.startswith("/bad/")) == sorted(
        f"/bad/{name}" for name in download.ARCHIVES
    )  # the mirror that answered wrongly was still asked for each archive


def test_all_mirrors_failing_is_one_line_naming_each(server, tmp_path):
    missing = server.url + "nothing/"
    with pytest.raises(DataError) as info:
        download.fetch_archives(tmp_path / "raw", [missing, server.url + "other/"], CHECKSUMS)
    message = str(info.value)
    assert message.startswith("could not download t10k-labels-idx1-ubyte.gz: ")
    assert f"{missing}t10k-labels-idx1-ubyte.gz: HTTP 404" in message and "other/" in message
    assert not (tmp_path / "raw").exists()


def test_a_trickling_archive_ends_at_its_deadline_and_a_redirect_loop_in_one_line(
    server, tmp_path, monkeypatch
):
    monkeypatch.setattr(http_get, "ARCHIVE_DEADLINE_S", 0.5)
    slow, looping = server.serve("slow/", _archives()), server.url + "loop/"
    server.trickle.update(f"/slow/{name}" for name in CHECKSUMS)
    server.loop.update(f"/loop/{name}" for name in CHECKSUMS)
    started = time.monotonic()
    with pytest.raises(DataError) as info:
        download.fetch_archives(tmp_path / "raw", [slow, looping], CHECKSUMS, timeout_s=2)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "\n" not in message and "not all of it within 0.5 s" in message
    assert "HTTP 302 The HTTP server returned a redirect error that would lead to an" in message
    assert not (tmp_path / "raw").exists()


def test_a_server_that_is_gone_fails_at_once(tmp_path):
    started = time.monotonic()
    with pytest.raises(DataError, match=r"no answer from 127\.0\.0\.1:\d+ within 3 s"):
        load_dataset(_config(tmp_path / "data", _closed_port_url()), checksums=CHECKSUMS)
    assert time.monotonic() - started < 2
    assert not (tmp_path / "data").exists()


def test_silent_mirrors_cost_one_timeout_each(tmp_path):
    with contextlib.ExitStack() as stack:
        mirrors = []
        for _ in range(2):
            sock, url = _silent_server()
            stack.callback(sock.close)
            mirrors.append(url)
        started = time.monotonic()
        with pytest.raises(DataError, match="timed out") as info:
            download.fetch_archives(tmp_path / "raw", mirrors, CHECKSUMS, timeout_s=0.3)
        elapsed = time.monotonic() - started
    assert elapsed < 2, elapsed  # 2 mirrors x 0.3 s, not 4 archives x 2 mirrors x 0.3 s
    assert all(url in str(info.value) for url in mirrors)
    assert not (tmp_path / "raw").exists()


def test_a_malformed_idx_with_a_matching_checksum_is_refused_by_the_idx_checks(server, tmp_path):
    broken = _archives(truncate="train-labels-idx1-ubyte.gz")
    config = _config(tmp_path, server.serve("", broken))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz holds .* truncated or corrupt"):
        load_dataset(config, checksums=_sha256s(broken))


def test_a_users_file_with_other_bytes_is_refused_not_replaced(server, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"mine")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz has sha256 .* move it away"):
        load_dataset(_config(tmp_path, server.serve("", ARCHIVES)), checksums=CHECKSUMS)
    assert _files(tmp_path) == ["MNIST/raw/t10k-images-idx3-ubyte.gz"]
    assert (raw / "t10k-images-idx3-ubyte.gz").read_bytes() == b"mine" and not server.requests


def test_a_download_killed_midway_leaves_nothing_and_the_next_run_completes(server, tmp_path):
    url = server.serve("", ARCHIVES)
    server.stall.add("/train-images-idx3-ubyte.gz")  # the last archive: three are in memory
    code = (
        "import sys; from pathlib import Path; from aejax.data import download; "
        f"download.fetch_archives(Path(sys.argv[1]), [sys.argv[2]], {CHECKSUMS!r})"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), url], cwd=REPO)
    deadline = time.monotonic() + 20
    while "/train-images-idx3-ubyte.gz" not in server.requests and time.monotonic() < deadline:
        assert child.poll() is None, "the download ended before it was killed"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert _files(tmp_path) == []  # nothing half-written, nothing unverified
    # A temporary file as a kill during the final writes leaves it: its process is gone.
    leftover = tmp_path / f".train-images-idx3-ubyte.gz.{child.pid}@{socket.gethostname()}.part"
    leftover.write_bytes(b"half an archive")
    server.stall.clear()
    download.fetch_archives(tmp_path, [url], CHECKSUMS)
    assert _files(tmp_path) == sorted(download.ARCHIVES)
    assert not leftover.exists()
    train_images = "train-images-idx3-ubyte.gz"
    assert (tmp_path / train_images).read_bytes() == ARCHIVES[train_images]


def test_only_temporary_files_of_dead_or_stale_downloads_are_removed(tmp_path):
    host = socket.gethostname()
    dead = subprocess.Popen(["true"])
    dead.wait()
    names = {
        "dead": f".t10k-labels-idx1-ubyte.gz.{dead.pid}@{host}.part",
        "live": f".t10k-labels-idx1-ubyte.gz.{os.getpid()}@{host}.part",
        "elsewhere": ".t10k-labels-idx1-ubyte.gz.1@other-host.part",
        "stale": ".t10k-images-idx3-ubyte.gz.1@other-host.part",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    old = time.time() - download.STALE_TEMP_S - 1
    os.utime(tmp_path / names["stale"], (old, old))
    removed = download.remove_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == sorted([names["dead"], names["stale"]])
    assert sorted(_files(tmp_path)) == sorted([names["live"], names["elsewhere"]])


def test_no_download_refuses_and_asks_nothing(server, tmp_path):
    config = _config(tmp_path, server.serve("", ARCHIVES), source="auto", no_download=True)
    with pytest.raises(DataError, match="not prepared for tfds, and downloads are off") as info:
        load_dataset(config, checksums=CHECKSUMS)
    assert info.value.settings == ("data_dir", "no_download") and not server.requests
    with pytest.raises(UserError, match="exclude each other"):
        DataConfig(source="download", no_download=True)


def test_mirror_must_be_an_http_url(monkeypatch):
    with pytest.raises(UserError, match="mirror must be an http") as info:
        DataConfig(mirror="/srv/mnist")
    assert info.value.settings == ("mirror",)
    monkeypatch.setenv(download.MIRROR_ENV, "ftp://example.org/mnist")
    with pytest.raises(DataError, match=r"\$AEJAX_DATA_MIRROR must be an http\(s\) URL"):
        download.mirror_urls("mnist")
    monkeypatch.setenv(download.MIRROR_ENV, "http://mirror.internal/mnist")
    assert download.mirror_urls("mnist") == ("http://mirror.internal/mnist/",)
    assert download.mirror_urls("mnist", "https://a.example/") == ("https://a.example/",)
    monkeypatch.delenv(download.MIRROR_ENV)
    assert download.mirror_urls("fashion_mnist") == download.MIRRORS["fashion_mnist"]


def test_checksums_are_the_ones_tfds_registers():
    for dataset in ("mnist", "fashion_mnist"):
        registered = download.registered_checksums(dataset)
        assert list(registered) == list(download.ARCHIVES)
        assert all(len(digest) == 64 and int(digest, 16) >= 0 for digest in registered.values())
    mnist = download.registered_checksums("mnist")["train-images-idx3-ubyte.gz"]
    assert mnist == "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"


def test_each_dataset_probes_the_host_it_downloads_from(monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr(download, "answering", lambda urls, *a: asked.append(urls) or [])
    with pytest.raises(DataError, match="no network"):
        load_tfds("fashion_mnist", str(tmp_path))
    with pytest.raises(DataError, match="fashion-mnist.s3-website"):
        load_dataset(DataConfig(dataset="fashion_mnist", data_dir=str(tmp_path)))
    assert [download.hosts(urls) for urls in asked] == [
        "fashion-mnist.s3-website.eu-central-1.amazonaws.com"
    ] * 2


def test_the_scripts_refuse_in_one_line_with_exit_2(server, tmp_path, monkeypatch):
    # Hand-made archives do not have the registered checksums: a real refusal, end to end.
    args = ["--source", "download", "--data-dir", str(tmp_path / "d")]
    done = run_script_here("find_data", *args, "--mirror", server.serve("", ARCHIVES))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.endswith(" (flags: --mirror)\n")
    first = "t10k-labels-idx1-ubyte.gz"
    assert f"could not download {first}: " in done.stderr
    assert f"has sha256 {CHECKSUMS[first]}, not the registered " in done.stderr
    assert not (tmp_path / "d").exists()
    monkeypatch.setenv(download.MIRROR_ENV, _closed_port_url())
    done = run_script_here("find_data", "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "there is no network to download it (no answer from 127.0.0.1:" in done.stderr
    done = run_script_here("find_data", "--source", "download", "--no-download")
    assert done.returncode == 2
    assert done.stderr == (
        "error: source download and no_download exclude each other "
        "(flags: --source, --no-download)\n"
    )


def test_the_run_command_downloads_mnist_from_a_mirror_and_trains(server, tmp_path, monkeypatch):
    """The pipeline on a machine without MNIST but with a (here: loopback) mirror that answers:
    the archives are downloaded into torchvision's layout, then both stages train on them."""
    monkeypatch.setattr(download, "registered_checksums", lambda dataset: CHECKSUMS)
    monkeypatch.setenv(download.MIRROR_ENV, server.serve("", ARCHIVES))
    tiny = ["--epochs", "1", "--batch-size", "10", "--hidden", "16", "--latent", "8"]
    where = ["--data-dir", str(tmp_path / "data"), "--workdir", str(tmp_path / "runs")]
    done = run_script_here("pipeline", *tiny, *where, "--no-progress", "--no-tensorboard")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["dataset"] == "mnist"
    assert record["finetune"]["source"] == f"idx:{tmp_path / 'data' / 'MNIST' / 'raw'}"
    assert record["finetune"]["num_train"] == SIZES["train"] and record["finetune"]["epochs"] == 1
    assert _files(tmp_path / "data") == sorted(f"MNIST/raw/{n}" for n in download.ARCHIVES)


def test_a_mirrors_credentials_authenticate_and_never_show(server, tmp_path):
    served = server.serve("private/", _archives())
    with_credentials = served.replace("http://", "http://reader:s3cret%40x@")
    folder = download.fetch_archives(tmp_path / "raw", [with_credentials], CHECKSUMS)
    assert sorted(p.name for p in folder.iterdir()) == sorted(CHECKSUMS)
    assert set(server.authorizations) == {"Basic " + base64.b64encode(b"reader:s3cret@x").decode()}
    with pytest.raises(DataError) as info:
        download.fetch_archives(tmp_path / "other", [with_credentials + "gone/"], CHECKSUMS)
    assert "HTTP 404" in str(info.value) and "http://***@127.0.0.1" in str(info.value)
    assert "s3cret" not in str(info.value)
