"""The MNIST and Fashion-MNIST IDX archives from their canonical mirrors, without TensorFlow.

tensorflow-datasets 4.9 cannot *prepare* `mnist` or `fashion_mnist` without TensorFlow, so aejax
fetches the four ``.gz`` archives itself, as torchvision does, from the mirrors tfds and
torchvision use, and checks each against the sha256 that tensorflow-datasets registers for it (its
``url_checksums/`` files), whichever mirror served it. An archive is held in memory until it is
verified, then written under a temporary name in its final folder and renamed into place once all
four are verified: a download that fails or is killed never leaves a file a later run would read.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import os
import queue
import socket
import threading
import time
import urllib.error
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from aejax.data import http_get
from aejax.errors import DataError
from aejax.files import NEW_FILE_FLAGS
from aejax.specs import is_http_url, redact_urls

MIRRORS = {
    # tfds's URL first (Google's CVDF copy of LeCun's files), then torchvision's.
    "mnist": (
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    # Zalando's own bucket: the one URL both tfds and torchvision download Fashion-MNIST from.
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
# Renamed into place in this order: a folder holding train images holds the other three too.
ARCHIVES = (
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
)
MIRROR_ENV = "AEJAX_DATA_MIRROR"
PROBE_TIMEOUT_S = 3.0  # a host that does not accept a connection by then counts as offline
REQUEST_TIMEOUT_S = 10.0  # per connection attempt and per read, so a silent host costs seconds
STALE_TEMP_S = 120.0  # a temporary file untouched this long belongs to no live download


def mirror_urls(dataset: str, mirror: str | None = None) -> tuple[str, ...]:
    """Base URLs to download `dataset` from: `mirror`, else $AEJAX_DATA_MIRROR, else the canonical
    mirrors in order. A mirror is used alone: an internal mirror is how a closed network works."""
    chosen = mirror or os.environ.get(MIRROR_ENV)
    if not chosen:
        return MIRRORS[dataset]
    if not is_http_url(chosen):
        name = "mirror" if mirror else f"${MIRROR_ENV}"
        shown = redact_urls(chosen)
        raise DataError(f"{name} must be an http(s) URL, got {shown!r}", settings=("mirror",))
    return (chosen if chosen.endswith("/") else chosen + "/",)


def hosts(base_urls: Sequence[str]) -> str:
    """The hosts of `base_urls`, for messages: ``"a.example, b.example"``."""
    return ", ".join(urlsplit(url).netloc.rpartition("@")[2] for url in base_urls)


def _accepts_connection(url: str, timeout_s: float) -> bool:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def answering(base_urls: Sequence[str], timeout_s: float = PROBE_TIMEOUT_S) -> list[str]:
    """Those of `base_urls` whose host accepts a TCP connection within `timeout_s`, in order.

    The hosts are probed at once, each in a daemon thread, and the answer comes after `timeout_s`
    at most: a name lookup that hangs (no socket timeout covers it) is abandoned, not waited for.
    """
    results: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()

    def probe(url: str) -> None:
        results.put((url, _accepts_connection(url, timeout_s)))

    for url in base_urls:
        threading.Thread(target=probe, args=(url,), daemon=True).start()
    deadline, answered = time.monotonic() + timeout_s, set()
    for _ in base_urls:
        try:
            url, ok = results.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if ok:
            answered.add(url)
    return [url for url in base_urls if url in answered]


def registered_checksums(dataset: str) -> dict[str, str]:
    """``{archive name: sha256}`` as tensorflow-datasets registers them for `dataset`.

    Read from the installed package's ``url_checksums/DATASET.txt`` (lines of URL, size, sha256
    and file name) without importing it, and keyed by file name so they hold for any mirror.
    """
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"cannot verify a download of {dataset}: tensorflow-datasets is missing")
    path = Path(spec.submodule_search_locations[0]) / "url_checksums" / f"{dataset}.txt"
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DataError(
            f"cannot verify a download of {dataset}: no checksums at {path} ({err.strerror}); "
            "reinstall tensorflow-datasets, or place the IDX files by hand"
        ) from err
    fields = [line.strip().split("\t") for line in lines]
    found = {f[0].rsplit("/", 1)[-1]: f[2] for f in fields if len(f) >= 3}
    missing = [name for name in ARCHIVES if name not in found]
    if missing:
        raise DataError(f"{path} registers no checksum for {', '.join(missing)}")
    return {name: found[name] for name in ARCHIVES}


def fetch_archives(
    folder: Path,
    base_urls: Sequence[str],
    checksums: Mapping[str, str],
    timeout_s: float = REQUEST_TIMEOUT_S,
) -> Path:
    """`folder` holding the four archives, each with the sha256 `checksums` gives it.

    Archives already there with the right checksum are kept; the others are downloaded from the
    first of `base_urls` that serves the right bytes. When one cannot be had, `DataError` (one
    line) is raised before anything is written, and the folders made for them are removed.
    """
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create {folder}: {err.strerror}", settings=("data_dir",)) from err
    remove_leftovers(folder)
    missing = [name for name in ARCHIVES if not _in_place(folder / name, checksums[name])]
    try:
        if missing:
            bodies = _download_all(missing, base_urls, checksums, timeout_s)
            for name in missing:  # in ARCHIVES order: train images last
                _write_atomically(folder / name, bodies[name])
    except BaseException:
        for path in created:  # deepest first; rmdir leaves a folder something else filled
            try:
                path.rmdir()
            except OSError:
                break
        raise
    return folder


def _in_place(path: Path, sha256: str) -> bool:
    """Whether `path` holds the archive already; one with other bytes is the user's: refused."""
    if not path.exists():
        return False
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise DataError(
            f"{path} has sha256 {digest}, not the registered {sha256}; move it away to download "
            "a verified copy",
            settings=("data_dir",),
        )
    return True


def _download_all(
    names: Sequence[str], base_urls: Sequence[str], checksums: Mapping[str, str], timeout_s: float
) -> dict[str, bytes]:
    """The verified bytes of each archive in `names`, from the mirrors that answer."""
    live = answering(base_urls, min(timeout_s, PROBE_TIMEOUT_S))
    if not live:
        raise DataError(
            f"cannot download: no answer from {hosts(base_urls)} within "
            f"{min(timeout_s, PROBE_TIMEOUT_S):g} s",
            settings=("mirror",),
        )
    return {name: _download_verified(name, live, checksums[name], timeout_s) for name in names}


def _download_verified(name: str, live: list[str], sha256: str, timeout_s: float) -> bytes:
    """`name`'s bytes from the first mirror in `live` that serves them with checksum `sha256`.

    A mirror that does not answer is dropped from `live`, so a dead host costs one timeout per
    run, not one per archive; one that answers with an HTTP error or other bytes is kept.
    """
    failures = []
    for base in list(live):
        url = base + name
        try:
            body = http_get.get(url, timeout_s)
        except urllib.error.HTTPError as err:
            failures.append(f"{url}: HTTP {err.code} {http_get.one_line(err.reason)}")
            continue
        except (OSError, http.client.HTTPException) as err:
            failures.append(f"{url}: {http_get.one_line(http_get.reason(err))}")
            live.remove(base)
            continue
        digest = hashlib.sha256(body).hexdigest()
        if digest == sha256:
            return body
        failures.append(f"{url} has sha256 {digest}, not the registered {sha256}")
    why = redact_urls("; ".join(failures)) or "no mirror answers any more"
    raise DataError(f"could not download {name}: {why}", settings=("mirror",))


def _temp_name(name: str) -> str:
    # The host and pid say whose download it is, so a leftover of a dead one can be told apart.
    return f".{name}.{os.getpid()}@{socket.gethostname()}.part"


def _write_atomically(path: Path, body: bytes) -> None:
    """Write `body` to `path` through a temporary file in its folder and an atomic rename."""
    temp = path.with_name(_temp_name(path.name))
    try:
        # Created new: never through a name planted in a shared data folder.
        with os.fdopen(os.open(temp, NEW_FILE_FLAGS, 0o644), "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except OSError as err:
        temp.unlink(missing_ok=True)
        raise DataError(f"cannot write {path}: {err.strerror}", settings=("data_dir",)) from err


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove temporary files of downloads that died (killed mid-write); return them.

    One is a leftover when the process that wrote it is gone (same host), or when nothing has
    touched it for `STALE_TEMP_S` (another host's, whose process cannot be asked).
    """
    removed = []
    for temp in folder.glob(".*.part"):
        before, _, host = temp.name[: -len(".part")].partition("@")
        pid = before.rsplit(".", 1)[-1]
        dead = host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))
        try:
            if dead or time.time() - temp.stat().st_mtime > STALE_TEMP_S:
                temp.unlink()
                removed.append(temp)
        except FileNotFoundError:
            pass  # its own process renamed or removed it meanwhile
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
