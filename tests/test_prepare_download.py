"""wsss_core.prepare.download against a loopback HTTP server started by each test.

Every body is generated here (random bytes), every expected checksum is hashlib's digest of
those bytes, and the ``sleep`` between retries is a recorder, so nothing waits."""
from __future__ import annotations

import fcntl
import gzip
import hashlib
import os

import pytest

from wsss_core.prepare.download import (ChecksumError, DownloadError, UnsupportedURLError,
                                        download, file_matches, file_url, part_path,
                                        verify_file)
from wsss_core.testing.http_server import serve

pytest.importorskip('requests')

SIZE = 200_000


@pytest.fixture
def body():
    return os.urandom(SIZE)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tree(root):
    """Every path under ``root`` (relative), to show nothing else was left behind."""
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, dirs, files in os.walk(root) for n in dirs + files)


def fetch(url, dest, **kw):
    sleeps = kw.pop('sleeps', [])
    kw.setdefault('progress', False)
    return download(url, dest, sleep=sleeps.append, **kw)


def test_plain_download_with_sha256(tmp_path, body):
    dest = tmp_path / 'sub' / 'w.bin'
    with serve({'w.bin': body}) as server:
        out = fetch(server.url('w.bin'), dest, sha256=sha256(body), size=SIZE)
    assert out == dest and dest.read_bytes() == body
    assert server.ranges() == [None]
    assert tree(tmp_path) == ['sub', 'sub/w.bin']          # no part file left


def test_sha256_prefix_as_in_torchvision_names(tmp_path, body):
    with serve({'resnet.pth': body}) as server:
        fetch(server.url('resnet.pth'), tmp_path / 'a.pth', sha256=sha256(body)[:8])
        assert (tmp_path / 'a.pth').read_bytes() == body
        wrong = format((int(sha256(body)[:8], 16) + 1) % 16 ** 8, '08x')
        with pytest.raises(ChecksumError, match=f'starting with {wrong}'):
            fetch(server.url('resnet.pth'), tmp_path / 'b.pth', sha256=wrong)
    with pytest.raises(ValueError, match='at least 8'):
        fetch('http://127.0.0.1:1/x', tmp_path / 'c.pth', sha256=sha256(body)[:7])


def test_md5_only(tmp_path, body):
    with serve({'d.tar': body}) as server:
        fetch(server.url('d.tar'), tmp_path / 'd.tar', md5=md5(body))
    assert (tmp_path / 'd.tar').read_bytes() == body
    assert file_matches(tmp_path / 'd.tar', md5=md5(body), sha256=sha256(body), size=SIZE)


def test_wrong_checksum_leaves_nothing(tmp_path, body):
    expected = sha256(body + b'x')
    with serve({'w.bin': body}) as server:
        url = server.url('w.bin')
        with pytest.raises(ChecksumError) as err:
            fetch(url, tmp_path / 'w.bin', sha256=expected)
    message = str(err.value)
    assert url in message and expected in message and sha256(body) in message
    assert (err.value.algorithm, err.value.expected, err.value.actual) == \
        ('sha256', expected, sha256(body))
    assert tree(tmp_path) == []                             # neither the file nor its part


def test_dropped_connection_resumes_with_range(tmp_path, body):
    cut = 70_000
    with serve({'w.bin': body}, fail_after=cut) as server:
        sleeps = []
        fetch(server.url('w.bin'), tmp_path / 'w.bin', sha256=sha256(body), backoff=0.25,
              sleeps=sleeps)
    assert (tmp_path / 'w.bin').read_bytes() == body
    assert server.ranges() == [None, f'bytes={cut}-']
    assert [r.status for r in server.requests] == [200, 206]
    assert sleeps == [0.25]
    assert tree(tmp_path) == ['w.bin']


def test_resume_across_runs_keeps_the_part_hidden(tmp_path, body):
    """A run stopped during a retry leaves only the hidden part; the next run resumes it."""
    cut = 50_000
    dest = tmp_path / 'w.bin'

    def interrupt(_delay):
        raise KeyboardInterrupt

    with serve({'w.bin': body}, fail_after=cut) as server:
        with pytest.raises(KeyboardInterrupt):
            download(server.url('w.bin'), dest, sha256=sha256(body), progress=False,
                     sleep=interrupt)
        assert not dest.exists()
        assert part_path(dest).read_bytes() == body[:cut]
        fetch(server.url('w.bin'), dest, sha256=sha256(body))
    assert dest.read_bytes() == body and not part_path(dest).exists()
    assert server.ranges() == [None, f'bytes={cut}-']


def test_server_ignoring_range_restarts_from_zero(tmp_path, body):
    cut = 60_000
    with serve({'w.bin': body}, fail_after=cut, ignore_range=True) as server:
        fetch(server.url('w.bin'), tmp_path / 'w.bin', sha256=sha256(body))
    assert (tmp_path / 'w.bin').read_bytes() == body
    assert server.ranges() == [None, f'bytes={cut}-']      # asked for the rest ...
    assert [r.status for r in server.requests] == [200, 200]   # ... got it all again


def test_stale_part_of_another_version_is_discarded_once(tmp_path, body):
    dest = tmp_path / 'w.bin'
    part_path(dest).write_bytes(os.urandom(1000))          # not the start of this body
    with serve({'w.bin': body}) as server:
        fetch(server.url('w.bin'), dest, sha256=sha256(body))
    assert dest.read_bytes() == body
    assert server.ranges() == ['bytes=1000-', None]        # resumed, mismatched, restarted


def test_complete_part_answered_416_is_verified_and_kept(tmp_path, body):
    dest = tmp_path / 'w.bin'
    part_path(dest).write_bytes(body)                      # killed right before the rename
    with serve({'w.bin': body}) as server:
        fetch(server.url('w.bin'), dest, sha256=sha256(body))
    assert dest.read_bytes() == body
    assert [(r.range, r.status) for r in server.requests] == [(f'bytes={SIZE}-', 416)]


def test_503_twice_then_success_backs_off_exponentially(tmp_path, body):
    sleeps = []
    with serve({'w.bin': body}, status_sequence=[503, 503]) as server:
        fetch(server.url('w.bin'), tmp_path / 'w.bin', sha256=sha256(body), backoff=0.5,
              sleeps=sleeps)
    assert (tmp_path / 'w.bin').read_bytes() == body
    assert sleeps == [0.5, 1.0]                            # backoff * 2**(k-1), k = 1, 2
    assert [r.status for r in server.requests] == [503, 503, 200]


def test_retries_run_out(tmp_path, body):
    sleeps = []
    with serve({'w.bin': body}, status_sequence=[500] * 5) as server:
        with pytest.raises(DownloadError, match='gave up after 3'):
            fetch(server.url('w.bin'), tmp_path / 'w.bin', retries=2, backoff=2.0,
                  sleeps=sleeps)
    assert sleeps == [2.0, 4.0] and len(server.requests) == 3
    assert tree(tmp_path) == []


def test_mirrors_tried_in_order(tmp_path, body):
    with serve({'w.bin': body}) as server:
        urls = [server.url('gone.bin'), server.url('w.bin')]
        fetch(urls, tmp_path / 'w.bin', sha256=sha256(body))
    assert (tmp_path / 'w.bin').read_bytes() == body
    assert [(r.path, r.status) for r in server.requests] == [('/gone.bin', 404),
                                                             ('/w.bin', 200)]


def test_all_mirrors_failing_lists_each(tmp_path, body):
    other = os.urandom(SIZE)
    with serve({'other.bin': other}) as server:
        urls = [server.url('gone.bin'), server.url('other.bin'), 'http://127.0.0.1:9/x']
        with pytest.raises(DownloadError) as err:
            fetch(urls, tmp_path / 'w.bin', sha256=sha256(body), retries=0)
    message = str(err.value)
    assert 'any of its 3 sources' in message
    for url in urls:
        assert url in message
    assert 'HTTP 404' in message and sha256(other) in message
    assert [u for u, _ in err.value.failures] == urls
    assert isinstance(err.value.failures[1][1], ChecksumError)
    assert tree(tmp_path) == []


def test_existing_verified_file_makes_no_request(tmp_path, body):
    dest = tmp_path / 'w.bin'
    dest.write_bytes(body)
    with serve({'w.bin': body}) as server:
        fetch(server.url('w.bin'), dest, sha256=sha256(body), size=SIZE)
    assert server.requests == []


def test_existing_wrong_file_is_replaced(tmp_path, body):
    dest = tmp_path / 'w.bin'
    dest.write_bytes(b'old version')
    with serve({'w.bin': body}) as server:
        fetch(server.url('w.bin'), dest, md5=md5(body))
    assert dest.read_bytes() == body and len(server.requests) == 1


def test_announced_size_mismatch_stops_before_the_body(tmp_path, body):
    with serve({'w.bin': body}) as server:
        with pytest.raises(ChecksumError, match=f'announces {SIZE} bytes.*{SIZE + 1}'):
            fetch(server.url('w.bin'), tmp_path / 'w.bin', size=SIZE + 1)
    assert tree(tmp_path) == []


def test_no_content_length_truncation_told_by_known_size(tmp_path, body):
    cut = 80_000
    with serve({'w.bin': body}, fail_after=cut, send_length=False) as server:
        fetch(server.url('w.bin'), tmp_path / 'w.bin', size=SIZE)
    assert (tmp_path / 'w.bin').read_bytes() == body
    assert server.ranges() == [None, f'bytes={cut}-']


def test_bytes_stored_as_sent_despite_content_encoding(tmp_path):
    payload = gzip.compress(os.urandom(5000))              # a .gz served as "gzip encoded"
    with serve({'a.gz': payload}, headers={'Content-Encoding': 'gzip'}) as server:
        fetch(server.url('a.gz'), tmp_path / 'a.gz', sha256=sha256(payload))
    assert (tmp_path / 'a.gz').read_bytes() == payload
    assert server.requests[0].headers.get('Accept-Encoding') == 'identity'


def test_redirect_loop_fails_without_retrying(tmp_path):
    sleeps = []
    with serve({}, redirects={'a': 'b', 'b': 'a'}) as server:
        with pytest.raises(DownloadError, match='TooManyRedirects'):
            fetch(server.url('a'), tmp_path / 'w.bin', sleeps=sleeps)
    assert sleeps == [] and tree(tmp_path) == []


def test_redirect_followed(tmp_path, body):
    with serve({'new.bin': body}, redirects={'old.bin': 'new.bin'}) as server:
        fetch(server.url('old.bin'), tmp_path / 'w.bin', sha256=sha256(body))
    assert (tmp_path / 'w.bin').read_bytes() == body


def test_file_url(tmp_path, body):
    src = tmp_path / 'src' / 'w.bin'
    src.parent.mkdir()
    src.write_bytes(body)
    fetch(file_url(src), tmp_path / 'w.bin', sha256=sha256(body))
    assert (tmp_path / 'w.bin').read_bytes() == body
    with pytest.raises(ChecksumError, match='md5'):
        fetch(file_url(src), tmp_path / 'x.bin', md5=md5(b'other'))
    with pytest.raises(DownloadError, match='cannot read'):
        fetch(file_url(tmp_path / 'missing.bin'), tmp_path / 'y.bin')
    assert tree(tmp_path) == ['src', 'src/w.bin', 'w.bin']


@pytest.mark.parametrize('url', ['ftp://example.org/x.tar', 's3://bucket/x', '/abs/path/x',
                                 'file://otherhost/x'])
def test_unsupported_urls_refused_before_anything(tmp_path, url):
    with pytest.raises(UnsupportedURLError, match='only http://, https:// and file://'):
        fetch(url, tmp_path / 'x')
    assert tree(tmp_path) == []


def test_locked_part_means_another_download(tmp_path, body):
    dest = tmp_path / 'w.bin'
    with open(part_path(dest), 'wb') as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with serve({'w.bin': body}) as server:
            with pytest.raises(DownloadError, match='another process'):
                fetch(server.url('w.bin'), dest)
    assert server.requests == [] and not dest.exists()


def test_verify_file(tmp_path, body):
    path = tmp_path / 'f'
    path.write_bytes(body)
    assert verify_file(path, sha256=sha256(body), md5=md5(body), size=SIZE) == path
    with pytest.raises(ChecksumError, match=f'{SIZE} bytes where {SIZE - 1}'):
        verify_file(path, size=SIZE - 1)
    with pytest.raises(ChecksumError) as err:
        verify_file(path, sha256=sha256(body), md5=md5(body[:-1]))
    assert err.value.algorithm == 'md5' and err.value.actual == md5(body)
    with pytest.raises(FileNotFoundError):
        verify_file(tmp_path / 'missing', size=1)
