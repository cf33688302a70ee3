"""A local HTTP server for download tests: fixed files on 127.0.0.1, byte ranges, faults.

    from wsss_core.testing.http_server import serve

    with serve({'data/a.bin': b'...'}, fail_after=100) as server:
        url = server.url('data/a.bin')          # http://127.0.0.1:<port>/data/a.bin
        ...                                     # fetch it
        server.requests                         # what the server was asked, in order

The server listens on an ephemeral port of the loopback interface, answers from a thread
and is shut down when the ``with`` block ends.  It serves ``GET`` and ``HEAD`` of the
given files (keys are URL paths, with or without the leading ``/``; anything else is a
404) and implements single byte ranges, which :mod:`http.server` does not:

* ``Range: bytes=N-``, ``bytes=N-M`` (``M`` clipped to the last byte) and ``bytes=-K``
  (the last ``K`` bytes) are answered ``206 Partial Content`` with
  ``Content-Range: bytes START-END/TOTAL``;
* a range starting at or past the end is answered ``416`` with ``Content-Range: bytes
  */TOTAL``; a header it cannot parse (several ranges, another unit) is ignored: ``200``
  with the whole file, as RFC 9110 allows.

Faults, each for testing one path of a client:

* ``fail_after=N``: the first ``fail_count`` responses that carry a body announce their
  full ``Content-Length`` but send only ``N`` bytes of it, then the connection is dropped;
* ``ignore_range=True``: every ``Range`` header is ignored (``200``, whole file);
* ``status_sequence=[503, 503, 200]``: the ``i``-th request (over all paths) is answered
  with status ``status_sequence[i]`` (a short text body) unless that status is ``200`` or
  ``206``, which mean "serve normally"; requests past the list are served normally;
* ``redirects={'old': 'new'}``: ``GET /old`` answers ``302`` to ``/new``;
* ``headers={...}``: extra headers on every response (e.g. ``Content-Encoding: gzip`` to
  check that a client stores the bytes as sent);
* ``send_length=False``: no ``Content-Length`` (the end of the body is the end of the
  connection), so only a known size can tell a truncated body.

Each request is recorded in :attr:`LocalServer.requests` as a :class:`RecordedRequest`
(method, path, ``Range`` header, all headers, the status answered) so a test can assert,
for example, that a resumed download really asked for ``bytes=N-``.
"""
from __future__ import annotations

import contextlib
import http.server
import re
import socket
import threading
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

__all__ = ['RecordedRequest', 'LocalServer', 'serve']

_RANGE = re.compile(r'^bytes=(\d*)-(\d*)$')


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, and the status it answered."""
    method: str
    path: str
    range: Optional[str]
    headers: Dict[str, str] = field(default_factory=dict)
    status: int = 0


class LocalServer:
    """The running server of :func:`serve`: its address and what it was asked."""

    def __init__(self, httpd: http.server.ThreadingHTTPServer, files: Dict[str, bytes]):
        self._httpd = httpd
        self.files = files
        self.requests: List[RecordedRequest] = []

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f'http://{host}:{port}'

    def url(self, path: str) -> str:
        """The URL of the file served under ``path``."""
        return f'{self.base_url}/{path.lstrip("/")}'

    def ranges(self, path: Optional[str] = None) -> List[Optional[str]]:
        """The ``Range`` header of each request (of ``path`` only, if given), in order."""
        want = None if path is None else '/' + path.lstrip('/')
        return [r.range for r in self.requests if want is None or r.path == want]


def parse_range(header: Optional[str], total: int) -> Tuple[str, Optional[Tuple[int, int]]]:
    """How to answer ``Range: header`` for a body of ``total`` bytes.

    Returns ``('full', None)`` (no header, or one this server ignores), ``('partial',
    (start, end))`` (inclusive byte positions) or ``('unsatisfiable', None)``."""
    if not header:
        return 'full', None
    match = _RANGE.match(header.strip())
    if match is None or match[1] == match[2] == '':
        return 'full', None
    first, last = match[1], match[2]
    if first == '':                                  # suffix range: the last K bytes
        count = int(last)
        if count == 0 or total == 0:
            return 'unsatisfiable', None
        return 'partial', (max(0, total - count), total - 1)
    start = int(first)
    if start >= total:
        return 'unsatisfiable', None
    end = total - 1 if last == '' else min(int(last), total - 1)
    if end < start:
        return 'full', None                          # invalid: ignored (RFC 9110 14.1.1)
    return 'partial', (start, end)


def _handler_class(server_state: dict):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.0'    # one request per connection: the body ends cleanly

        def log_message(self, format, *args):   # noqa: A002  (keep test output quiet)
            pass

        def do_HEAD(self):
            self._answer(send_body=False)

        def do_GET(self):
            self._answer(send_body=True)

        def _answer(self, send_body: bool) -> None:
            st = server_state
            path = self.path.split('?', 1)[0]
            with st['lock']:
                index = st['count']
                st['count'] += 1
            forced = st['status_sequence'][index] if index < len(st['status_sequence']) \
                else None
            self._respond(path, forced, send_body)

        def send_response(self, code, message=None):
            # recorded before any byte of the answer leaves, so a client that got its
            # answer always finds the request in the record
            path = getattr(self, 'path', '').split('?', 1)[0]
            headers = getattr(self, 'headers', None) or {}
            record = RecordedRequest(getattr(self, 'command', None) or '', path,
                                     headers.get('Range'), dict(headers.items()), code)
            with server_state['lock']:
                server_state['server'].requests.append(record)
            super().send_response(code, message)

        def _respond(self, path: str, forced: Optional[int], send_body: bool) -> int:
            st = server_state
            if forced is not None and forced not in (200, 206):
                return self._text(forced, f'status {forced} from the status sequence\n',
                                  send_body)
            if path.lstrip('/') in st['redirects']:
                self.send_response(302)
                self.send_header('Location', '/' + st['redirects'][path.lstrip('/')].lstrip('/'))
                self.send_header('Content-Length', '0')
                self.end_headers()
                return 302
            body = st['files'].get(path.lstrip('/'))
            if body is None:
                return self._text(404, 'not found\n', send_body)
            total = len(body)
            how, span = parse_range(None if st['ignore_range'] else self.headers.get('Range'),
                                    total)
            if how == 'unsatisfiable':
                self.send_response(416)
                self.send_header('Content-Range', f'bytes */{total}')
                self.send_header('Content-Length', '0')
                self.end_headers()
                return 416
            if how == 'partial':
                start, end = span
                status, payload = 206, body[start:end + 1]
            else:
                status, payload = 200, body
            self.send_response(status)
            if status == 206:
                self.send_header('Content-Range', f'bytes {start}-{end}/{total}')
            self.send_header('Accept-Ranges', 'none' if st['ignore_range'] else 'bytes')
            self.send_header('Content-Type', 'application/octet-stream')
            if st['send_length']:
                self.send_header('Content-Length', str(len(payload)))
            for key, value in st['headers'].items():
                self.send_header(key, value)
            self.end_headers()
            if not send_body:
                return status
            with st['lock']:
                drop = st['fail_after'] is not None and st['drops_left'] > 0 and payload
                if drop:
                    st['drops_left'] -= 1
            if drop:
                self.wfile.write(payload[:st['fail_after']])
                self.wfile.flush()
                self._drop_connection()
            else:
                self.wfile.write(payload)
            return status

        def _text(self, status: int, text: str, send_body: bool) -> int:
            data = text.encode()
            self.send_response(status)
            self.send_header('Content-Type', 'text/plain')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            if send_body:
                self.wfile.write(data)
            return status

        def _drop_connection(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


@contextlib.contextmanager
def serve(files: Mapping[str, bytes], *, fail_after: Optional[int] = None, fail_count: int = 1,
          ignore_range: bool = False, status_sequence: Optional[Sequence[int]] = None,
          redirects: Optional[Mapping[str, str]] = None,
          headers: Optional[Mapping[str, str]] = None,
          send_length: bool = True) -> Iterator[LocalServer]:
    """Serve ``files`` (URL path -> bytes) on ``127.0.0.1`` from a thread; see the module
    docstring for the faults.  Yields the :class:`LocalServer`; stops it on exit."""
    state = {
        'files': {k.lstrip('/'): bytes(v) for k, v in files.items()},
        'fail_after': fail_after, 'drops_left': fail_count if fail_after is not None else 0,
        'ignore_range': ignore_range, 'status_sequence': list(status_sequence or ()),
        'redirects': {k.lstrip('/'): v for k, v in (redirects or {}).items()},
        'headers': dict(headers or {}), 'send_length': send_length,
        'lock': threading.Lock(), 'count': 0,
    }
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _handler_class(state))
    httpd.daemon_threads = True
    server = LocalServer(httpd, state['files'])
    state['server'] = server
    thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.05},
                              name='wsss-test-http', daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
