"""One HTTP GET of a dataset archive, bounded: in size (`MAX_ARCHIVE_BYTES`), in the wait for
each next bytes (the caller's timeout) and in all (`ARCHIVE_DEADLINE_S`), a URL's credentials
sent as HTTP basic authentication to that host only."""

from __future__ import annotations

import base64
import time
import urllib.request
from urllib.parse import unquote, urlsplit

MAX_ARCHIVE_BYTES = 64 * 2**20  # the largest archive has 26 MB; a bound on what a wrong URL sends
# All of one archive within this, however the bytes trickle in (26 MB at 100 kB/s takes 260 s).
ARCHIVE_DEADLINE_S = 600.0
_CHUNK_BYTES = 2**16
_USER_AGENT = "aejax (urllib)"


def one_line(text: object) -> str:
    """`text` with its line breaks and runs of spaces as single spaces (a redirect loop's reason
    spans three lines)."""
    return " ".join(str(text).split())


def reason(err: Exception) -> str:
    """Why a request failed, in a few words (a timeout says "timed out")."""
    reason = getattr(err, "reason", None) or err
    return str(reason) or type(reason).__name__


def get(url: str, timeout_s: float) -> bytes:
    """The body at `url`, read up to `MAX_ARCHIVE_BYTES` + 1 bytes (more cannot verify), all of
    it within `ARCHIVE_DEADLINE_S` (`timeout_s` bounds each wait for the next bytes)."""
    request = request_for(url)
    chunks, size = [], 0
    deadline = time.monotonic() + ARCHIVE_DEADLINE_S
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        # read1: what has arrived, at most one wait, so that the deadline is looked at often
        while size <= MAX_ARCHIVE_BYTES and (chunk := response.read1(_CHUNK_BYTES)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all of it within {ARCHIVE_DEADLINE_S:g} s")
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def request_for(url: str) -> urllib.request.Request:
    """The request for `url`, its ``user:password@`` (which urllib would take for part of the
    host name) sent as HTTP basic authentication, to that host only (not after a redirect)."""
    parts = urlsplit(url)
    if parts.username is None:
        return urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    host = parts.netloc.rpartition("@")[2]
    request = urllib.request.Request(
        parts._replace(netloc=host).geturl(), headers={"User-Agent": _USER_AGENT}
    )
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    request.add_unredirected_header(
        "Authorization", f"Basic {base64.b64encode(pair.encode()).decode()}"
    )
    return request
