"""Verified, resumable downloads: stream to a hidden partial file, check, then rename.

:func:`download` fetches one file from a list of mirror URLs (tried in order) to ``dest``:

1. If ``dest`` exists and matches the expected size / checksum it is returned at once, no
   request made.  (With neither given, an existing ``dest`` is taken as it is.)
2. The bytes stream (through :mod:`requests`) into ``.<name>.part`` next to ``dest``; never
   under ``dest`` itself.  A ``tqdm`` progress bar shows them unless ``progress=False``.
3. A ``.part`` left by an earlier attempt (a dropped connection, an interrupted run) is
   resumed with ``Range: bytes=N-``, ``N`` its size.  The answer decides:
   ``206`` (its ``Content-Range`` must start at ``N``) appends;
   ``200`` (the server ignores ranges) starts again from byte 0;
   ``416`` (nothing past ``N``) means the part may already be whole: it is verified, and
   discarded if it fails.
4. Connection errors, timeouts, a body shorter than announced, and the statuses 408, 425,
   429, 500, 502, 503, 504 are retried on the same URL after ``backoff * 2**(k-1)`` seconds
   (``k``: failures in a row; capped at 60 s; a server's ``Retry-After``, capped the same,
   can lengthen it), at most ``retries`` times in a row.  An attempt that extends the
   part past anything received before resets the count, so a long download over a link
   that drops now and then finishes.  Any other status (404, 403, ...), a malformed URL or
   a redirect loop gives up on that URL at once and the next mirror is tried, resuming the
   same part.
5. When the body is complete the part's size and checksum are compared with the expected
   ones (the digests are computed while streaming, so the file is not read again).  On a
   mismatch the part is discarded (emptied, and its file removed before :func:`download`
   returns or raises); if the part had been resumed, the same URL is tried once
   more from byte 0 (a stale part from another version of the file would explain it),
   otherwise the next mirror is tried.  If every mirror fails, :class:`DownloadError`
   lists each URL with its failure (with one URL, that URL's own error is raised, e.g. a
   :class:`ChecksumError` naming the URL, the expected and the actual checksum).
6. On success the part is flushed, ``fsync``-ed and renamed over ``dest``
   (:func:`os.replace`, atomic), and the folder is ``fsync``-ed.

So ``dest`` either does not exist or holds the whole verified file.  A part left after a
failure that only made the connection give up is kept for the next run to resume; an empty
or rejected one is removed.  While a process downloads, it holds an exclusive lock on the
part (``flock``, where the platform has it): a second process for the same ``dest`` fails
at once instead of writing into the same file.

**Checksums.**  ``sha256`` is a full hex digest (64 characters) or a *prefix* of one of at
least 8 characters: torchvision names its weight files ``<name>-<first 8 hex of the
sha256>.pth`` and publishes nothing longer; a prefix match checks those.  ``md5`` (some
data sets publish only that) must be the full 32 characters.  Both may be given; both are
checked.  ``size`` is the exact byte count.

**URLs.**  ``http://`` and ``https://`` go over the network; ``file://`` copies a local
file (the same checks apply; :func:`file_url` makes one from a path).  Any other scheme is
refused with :class:`UnsupportedURLError` before anything is fetched.

``requests`` is imported on the first network download, not when this module is imported.
"""
from __future__ import annotations

import contextlib
import email.utils
import hashlib
import logging
import os
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

__all__ = ['DownloadError', 'ChecksumError', 'UnsupportedURLError', 'download', 'verify_file',
           'file_matches', 'part_path', 'file_url']

logger = logging.getLogger('wsss')

CHUNK = 1 << 20
MIN_SHA256_PREFIX = 8
MAX_DELAY = 60.0
#: statuses worth asking again for: the server is busy or failed, not the request
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
INSTALL_HINT = "pip install 'wsss-core[prepare]'"
_HEX = re.compile(r'^[0-9a-f]+$')

Urls = Union[str, Sequence[str]]


class DownloadError(RuntimeError):
    """A file could not be fetched.  ``failures`` lists ``(url, error)`` per mirror tried."""

    def __init__(self, message: str, *, url: Optional[str] = None,
                 failures: Sequence[Tuple[str, BaseException]] = ()):
        super().__init__(message)
        self.url = url
        self.failures = list(failures)


class ChecksumError(DownloadError):
    """A file's size or checksum differs from the expected one.  ``algorithm`` is
    ``'size'``, ``'sha256'`` or ``'md5'``; ``expected`` / ``actual`` the two values."""

    def __init__(self, message: str, *, path, algorithm: str, expected, actual,
                 url: Optional[str] = None):
        super().__init__(message, url=url)
        self.path = Path(path)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class UnsupportedURLError(DownloadError, ValueError):
    """A URL whose scheme is neither ``http(s)://`` nor ``file://``."""


# ----------------------------------------------------------------------------- expectations
@dataclass(frozen=True)
class _Expected:
    sha256: Optional[str] = None
    md5: Optional[str] = None
    size: Optional[int] = None

    @classmethod
    def of(cls, sha256=None, md5=None, size=None) -> '_Expected':
        if sha256 is not None:
            sha256 = sha256.strip().lower()
            if not _HEX.match(sha256) or not MIN_SHA256_PREFIX <= len(sha256) <= 64:
                raise ValueError(f'sha256 must be 64 hex characters, or a prefix of at least '
                                 f'{MIN_SHA256_PREFIX}: got {sha256!r}')
        if md5 is not None:
            md5 = md5.strip().lower()
            if not _HEX.match(md5) or len(md5) != 32:
                raise ValueError(f'md5 must be 32 hex characters: got {md5!r}')
        if size is not None and (int(size) != size or size < 0):
            raise ValueError(f'size must be a byte count >= 0: got {size!r}')
        return cls(sha256, md5, None if size is None else int(size))

    @property
    def algorithms(self) -> List[str]:
        return [a for a in ('sha256', 'md5') if getattr(self, a) is not None]

    def mismatch(self, digests: Dict[str, str],
                 nbytes: int) -> Optional[Tuple[str, object, object]]:
        """``(algorithm, expected, actual)`` of the first check that fails, else None."""
        if self.size is not None and nbytes != self.size:
            return 'size', self.size, nbytes
        if self.sha256 is not None and not digests['sha256'].startswith(self.sha256):
            return 'sha256', self.sha256, digests['sha256']
        if self.md5 is not None and digests['md5'] != self.md5:
            return 'md5', self.md5, digests['md5']
        return None


def _describe_mismatch(algorithm: str, expected, actual) -> str:
    if algorithm == 'size':
        return f'{actual} bytes where {expected} were expected'
    if algorithm == 'sha256' and len(expected) < 64:
        return f'sha256 {actual}, expected one starting with {expected}'
    return f'{algorithm} {actual}, expected {expected}'


def _hash_file(path, algorithms: Sequence[str]) -> Dict[str, str]:
    """Hex digests of the file at ``path`` for each of ``algorithms``, in one read."""
    hashers = {a: hashlib.new(a) for a in algorithms}
    with open(path, 'rb') as fh:
        while hashers:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _file_problem(path: Path, expected: _Expected) -> Optional[Tuple[str, object, object]]:
    nbytes = path.stat().st_size
    if expected.size is not None and nbytes != expected.size:
        return 'size', expected.size, nbytes
    return expected.mismatch(_hash_file(path, expected.algorithms), nbytes)


def verify_file(path, *, sha256: Optional[str] = None, md5: Optional[str] = None,
                size: Optional[int] = None) -> Path:
    """Check the file at ``path`` against a size and checksums (sha256 full or prefix, md5;
    see the module docstring); return the path, or raise :class:`ChecksumError` (a
    different file) or :class:`FileNotFoundError`.  The file is hashed in one streamed read
    (the size is compared first, without reading)."""
    path = Path(path)
    expected = _Expected.of(sha256, md5, size)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such file')
    problem = _file_problem(path, expected)
    if problem is not None:
        raise ChecksumError(f'{path}: {_describe_mismatch(*problem)}', path=path,
                            algorithm=problem[0], expected=problem[1], actual=problem[2])
    return path


def file_matches(path, *, sha256: Optional[str] = None, md5: Optional[str] = None,
                 size: Optional[int] = None) -> bool:
    """Whether ``path`` is a file that passes :func:`verify_file`."""
    try:
        verify_file(path, sha256=sha256, md5=md5, size=size)
    except (ChecksumError, FileNotFoundError):
        return False
    return True


# ----------------------------------------------------------------------------- URLs
def part_path(dest) -> Path:
    """Where :func:`download` keeps the partial file of ``dest``: ``.<name>.part`` beside it."""
    dest = Path(dest)
    return dest.with_name('.' + dest.name + '.part')


def file_url(path) -> str:
    """The ``file://`` URL of a local file (absolute), for :func:`download`."""
    return Path(path).resolve().as_uri()


def _scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


def _url_list(url_or_urls: Urls) -> List[str]:
    urls = [url_or_urls] if isinstance(url_or_urls, str) else list(url_or_urls)
    if not urls:
        raise ValueError('download: no URL given')
    for url in urls:
        if not isinstance(url, str):
            raise TypeError(f'download: a URL must be a string, got {url!r}')
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in ('http', 'https') and parts.netloc:
            continue
        if scheme == 'file' and parts.netloc in ('', 'localhost'):
            continue
        raise UnsupportedURLError(
            f'{url}: unsupported URL; only http://, https:// and file:// (a local file on '
            'this machine) can be downloaded', url=url)
    return urls


def _local_path(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))


def _requests():
    try:
        import requests
    except ImportError as exc:          # pragma: no cover - the 'prepare' extra is missing
        raise ImportError(f'downloads need the requests package: {INSTALL_HINT}') from exc
    return requests


# ----------------------------------------------------------------------------- partial file
class _PartFile:
    """The open, locked partial file, with running digests of its content."""

    def __init__(self, path: Path, algorithms: Sequence[str]):
        self.path = path
        self.algorithms = list(algorithms)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _lock(fd, path)
            self.fh = os.fdopen(fd, 'r+b')
        except BaseException:
            os.close(fd)
            raise
        self.moved = False
        self._hashers = {a: hashlib.new(a) for a in self.algorithms}
        self.size = 0
        while True:                       # digests of what an earlier attempt left
            chunk = self.fh.read(CHUNK)
            if not chunk:
                break
            self._update(chunk)
        self.high_water = self.size

    def _update(self, chunk: bytes) -> None:
        for h in self._hashers.values():
            h.update(chunk)
        self.size += len(chunk)

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)
        self._update(chunk)

    def reset(self) -> None:
        """Empty the file: the next bytes start at 0."""
        self.fh.seek(0)
        self.fh.truncate(0)
        self._hashers = {a: hashlib.new(a) for a in self.algorithms}
        self.size = 0

    def digests(self) -> Dict[str, str]:
        return {a: h.hexdigest() for a, h in self._hashers.items()}

    def made_progress(self) -> bool:
        """Whether the part is longer than ever before (and note it)."""
        if self.size > self.high_water:
            self.high_water = self.size
            return True
        return False

    def move_to(self, dest: Path) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        os.replace(self.path, dest)
        self.moved = True
        _fsync_dir(dest.parent)

    def close(self, *, remove_if_empty: bool) -> None:
        try:
            if remove_if_empty and self.size == 0 and not self.moved:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
        finally:
            self.fh.close()


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:                   # pragma: no cover - no flock on this platform
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        raise DownloadError(f'{path} is locked: another process is downloading the same '
                            'file; wait for it to finish') from exc


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ----------------------------------------------------------------------------- transfers
class _Transient(Exception):
    """A failure worth retrying on the same URL (after ``retry_after`` s if the server said)."""

    def __init__(self, message: str, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Options:
    progress: bool
    retries: int
    backoff: float
    timeout: float
    sleep: Callable[[float], None]


def _progress_bar(total: Optional[int], initial: int, name: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit='B', unit_scale=True, unit_divisor=1024,
                desc=name, disable=not enabled, dynamic_ncols=True)


def _check_complete(part: _PartFile, expected: _Expected, url: str, dest: Path) -> None:
    problem = expected.mismatch(part.digests(), part.size)
    if problem is not None:
        raise ChecksumError(f'{url}: the downloaded {dest.name} has '
                            f'{_describe_mismatch(*problem)}', path=dest,
                            algorithm=problem[0], expected=problem[1], actual=problem[2],
                            url=url)


def _copy_local(url: str, part: _PartFile, expected: _Expected, dest: Path,
                opts: _Options) -> None:
    """Copy the file of a ``file://`` URL into the part (from byte 0) and verify it."""
    src = _local_path(url)
    part.reset()
    try:
        fh = open(src, 'rb')
    except OSError as exc:
        raise DownloadError(f'{url}: cannot read {src}: {exc.strerror or exc}', url=url) from exc
    with fh:
        total = os.fstat(fh.fileno()).st_size
        if expected.size is not None and total != expected.size:
            raise ChecksumError(f'{url}: {_describe_mismatch("size", expected.size, total)}',
                                path=dest, algorithm='size', expected=expected.size,
                                actual=total, url=url)
        with _progress_bar(total, 0, dest.name, opts.progress) as bar:
            while True:
                try:
                    chunk = fh.read(CHUNK)
                except OSError as exc:
                    raise DownloadError(f'{url}: cannot read {src}: {exc.strerror or exc}',
                                        url=url) from exc
                if not chunk:
                    break
                part.write(chunk)           # an OSError here (disk full) is not the source's
                bar.update(len(chunk))
    _check_complete(part, expected, url, dest)


def _retry_after(resp) -> Optional[float]:
    value = resp.headers.get('Retry-After')
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


def _content_range(resp) -> Tuple[Optional[int], Optional[int]]:
    """``(first byte, total)`` from ``Content-Range: bytes A-B/T`` (or ``*/T``)."""
    match = re.match(r'^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$',
                     resp.headers.get('Content-Range', ''))
    if match is None:
        return None, None
    start = int(match[1]) if match[1] is not None else None
    total = int(match[2]) if match[2] != '*' else None
    return start, total


def _network_errors():
    """Errors of a connection that may work if tried again (not a malformed URL, not too
    many redirects: those are other ``RequestException``-s and fail the URL at once)."""
    requests = _requests()
    import urllib3
    return (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def _http_attempt(url: str, session, part: _PartFile, expected: _Expected, dest: Path,
                  opts: _Options) -> None:
    """One request: append the rest of the body to the part.  Returns when the body is
    complete (or the server says there is nothing past the part); raises :class:`_Transient`
    for a failure worth retrying and :class:`DownloadError` for one that is not."""
    network_errors = _network_errors()
    offset = part.size
    # identity: store the bytes as the server has them (a .tar.gz sent with
    # Content-Encoding: gzip must not be decompressed on the way)
    headers = {'Accept-Encoding': 'identity'}
    if offset:
        headers['Range'] = f'bytes={offset}-'
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=opts.timeout)
    except network_errors as exc:
        raise _Transient(f'{type(exc).__name__}: {exc}') from exc
    except _requests().RequestException as exc:
        raise DownloadError(f'{url}: {type(exc).__name__}: {exc}', url=url) from exc
    with resp:
        status = resp.status_code
        if status == 416 and offset:
            _, total = _content_range(resp)
            if total is not None and total < offset:
                logger.info('%s: the partial file is longer than the file (%d > %d bytes); '
                            'starting again', dest.name, offset, total)
                part.reset()
                raise _Transient(f'HTTP 416: partial file longer than the {total}-byte file')
            return                        # nothing past the part: it may be whole; verify
        if status in TRANSIENT_STATUSES:
            raise _Transient(f'HTTP {status} {resp.reason}', _retry_after(resp))
        if status == 206 and offset:
            start, total = _content_range(resp)
            if start != offset:
                part.reset()
                raise _Transient(f'HTTP 206 from byte {start} where byte {offset} was asked')
        elif status == 200:
            if offset:
                logger.info('%s: %s ignores byte ranges; downloading from the start',
                            dest.name, urllib.parse.urlsplit(url).netloc)
                part.reset()
                offset = 0
        else:
            raise DownloadError(f'{url}: HTTP {status} {resp.reason}', url=url)
        length = resp.headers.get('Content-Length')
        total = offset + int(length) if length is not None and length.isdigit() else None
        if expected.size is not None and total is not None and total != expected.size:
            raise ChecksumError(f'{url}: the server announces {total} bytes for {dest.name}, '
                                f'{expected.size} were expected', path=dest, algorithm='size',
                                expected=expected.size, actual=total, url=url)
        with _progress_bar(total, offset, dest.name, opts.progress) as bar:
            stream = resp.raw.stream(CHUNK, decode_content=False)
            while True:
                try:
                    chunk = next(stream)
                except StopIteration:
                    break
                except network_errors as exc:
                    raise _Transient(f'connection lost after {part.size} bytes '
                                     f'({type(exc).__name__}: {exc})') from exc
                part.write(chunk)
                bar.update(len(chunk))
                if expected.size is not None and part.size > expected.size:
                    raise ChecksumError(f'{url}: more than the expected {expected.size} bytes '
                                        f'for {dest.name}', path=dest, algorithm='size',
                                        expected=expected.size, actual=part.size, url=url)
        if total is None and expected.size is not None:
            total = expected.size         # no Content-Length: the known size tells a cut
        if total is not None and part.size < total:
            raise _Transient(f'connection closed after {part.size} of {total} bytes')


def _fetch_http(url: str, session, part: _PartFile, expected: _Expected, dest: Path,
                opts: _Options) -> None:
    """Fetch ``url`` into the part, retrying transient failures; verify the result."""
    failures_in_row = 0
    restarted = False
    while True:
        if expected.size is not None and part.size > expected.size:
            part.reset()
        resumed = part.size > 0
        try:
            _http_attempt(url, session, part, expected, dest, opts)
        except _Transient as exc:
            if part.made_progress():
                failures_in_row = 0
            failures_in_row += 1
            if failures_in_row > opts.retries:
                raise DownloadError(f'{url}: {exc} (gave up after {failures_in_row} failed '
                                    'attempts in a row)', url=url) from exc
            delay = min(opts.backoff * 2 ** (failures_in_row - 1), MAX_DELAY)
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, MAX_DELAY))
            logger.warning('%s: %s; retrying in %.1f s (%d/%d)', dest.name, exc, delay,
                           failures_in_row, opts.retries)
            opts.sleep(delay)
            continue
        except ChecksumError:
            part.reset()
            raise
        try:
            _check_complete(part, expected, url, dest)
        except ChecksumError as exc:
            part.reset()
            if resumed and not restarted:
                restarted = True
                logger.warning('%s; the partial file was resumed, downloading it again from '
                               'the start', exc)
                continue
            raise
        return


def download(url_or_urls: Urls, dest, *, sha256: Optional[str] = None,
             md5: Optional[str] = None, size: Optional[int] = None, progress: bool = True,
             retries: int = 4, backoff: float = 1.0, timeout: float = 60,
             session=None, sleep: Optional[Callable[[float], None]] = None) -> Path:
    """Download ``url_or_urls`` (one URL, or mirrors tried in order) to ``dest``, verified;
    return ``dest``.  See the module docstring for resume, retries and checksums.

    ``progress``: show a tqdm bar (on stderr).  ``retries``: failed attempts in a row
    retried per URL.  ``backoff``: the first retry's delay in seconds (doubling).
    ``timeout``: seconds to connect and between received bytes.  ``session``: a
    ``requests.Session`` to use (one is made and closed otherwise).  ``sleep``: the delay
    function (``time.sleep``; tests pass a recorder)."""
    urls = _url_list(url_or_urls)
    expected = _Expected.of(sha256, md5, size)
    dest = Path(dest)
    if dest.is_dir():
        raise DownloadError(f'{dest} is a folder; download needs a file path', url=urls[0])
    if dest.exists():
        problem = _file_problem(dest, expected)
        if problem is None:
            logger.debug('%s is already there and verified', dest)
            return dest
        logger.warning('%s exists but has %s: downloading it again', dest,
                       _describe_mismatch(*problem))
    opts = _Options(progress=progress, retries=int(retries), backoff=float(backoff),
                    timeout=timeout, sleep=time.sleep if sleep is None else sleep)
    dest.parent.mkdir(parents=True, exist_ok=True)
    own_session = None
    if session is None and any(_scheme(u) != 'file' for u in urls):
        session = own_session = _requests().Session()
    part = _PartFile(part_path(dest), expected.algorithms)
    failures: List[Tuple[str, BaseException]] = []
    try:
        for url in urls:
            try:
                if _scheme(url) == 'file':
                    _copy_local(url, part, expected, dest, opts)
                else:
                    _fetch_http(url, session, part, expected, dest, opts)
            except DownloadError as exc:
                if isinstance(exc, ChecksumError):
                    part.reset()          # rejected bytes are never resumed
                failures.append((url, exc))
                if len(urls) > 1:
                    logger.warning('%s', exc)
                continue
            part.move_to(dest)
            return dest
    finally:
        part.close(remove_if_empty=True)
        if own_session is not None:
            own_session.close()
    if len(failures) == 1:
        raise failures[0][1]
    lines = '\n'.join(f'  - {exc}' if str(exc).startswith(url) else f'  - {url}: {exc}'
                      for url, exc in failures)
    raise DownloadError(f'could not download {dest.name} from any of its {len(urls)} '
                        f'sources:\n{lines}', url=urls[-1], failures=failures)

