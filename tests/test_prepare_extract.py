"""wsss_core.prepare.extract on archives generated here: good ones, and hostile ones that
must be refused with nothing written anywhere (the whole tmp tree is compared)."""
from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import zipfile

import pytest

from wsss_core.prepare.extract import (ArchiveError, UnsafeArchiveError, archive_format,
                                       safe_extract)

GOOD = {'top/a.txt': b'alpha', 'top/sub/b.bin': bytes(range(256)) * 3, 'top/sub/c.txt': b'c'}


def tree(root):
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, dirs, files in os.walk(root) for n in dirs + files)


def tar_info(name, data=b'', kind=tarfile.REGTYPE, linkname=''):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = 1_600_000_000
    return info


def make_tar(path, entries, mode='w'):
    """``entries``: (TarInfo, bytes) pairs, written as given (no sanitising)."""
    with tarfile.open(path, mode) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def make_zip(path, entries):
    """``entries``: (ZipInfo or name, bytes) pairs, written as given."""
    with zipfile.ZipFile(path, 'w') as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def good_tar_entries():
    entries = [(tar_info('top', kind=tarfile.DIRTYPE), b''),
               (tar_info('top/sub', kind=tarfile.DIRTYPE), b'')]
    return entries + [(tar_info(name, data), data) for name, data in GOOD.items()]


@pytest.mark.parametrize('suffix,mode', [('.tar', 'w'), ('.tar.gz', 'w:gz'), ('.tgz', 'w:gz'),
                                         ('.tar.bz2', 'w:bz2'), ('.tar.xz', 'w:xz')])
def test_good_tar_with_strip_components(tmp_path, suffix, mode):
    archive = make_tar(tmp_path / f'data{suffix}', good_tar_entries(), mode)
    target = tmp_path / 'out' / 'ds'
    written = safe_extract(archive, target, strip_components=1)
    assert written == [target / 'a.txt', target / 'sub' / 'b.bin', target / 'sub' / 'c.txt']
    for name, data in GOOD.items():
        assert (target / name.split('/', 1)[1]).read_bytes() == data
    assert tree(tmp_path / 'out') == ['ds', 'ds/a.txt', 'ds/sub', 'ds/sub/b.bin',
                                      'ds/sub/c.txt']               # no temporary left
    assert os.stat(target / 'a.txt').st_mtime == 1_600_000_000
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o777 & ~umask  # not mkdtemp's 0o700


def test_good_zip_with_strip_components_and_filter(tmp_path):
    archive = make_zip(tmp_path / 'data.zip', [('top/', b'')] + list(GOOD.items()))
    target = tmp_path / 'ds'
    written = safe_extract(archive, target, strip_components=1,
                           members_filter=lambda name: name.startswith('top/sub/'))
    assert written == [target / 'sub' / 'b.bin', target / 'sub' / 'c.txt']
    assert (target / 'sub' / 'b.bin').read_bytes() == GOOD['top/sub/b.bin']
    assert tree(target) == ['sub', 'sub/b.bin', 'sub/c.txt']


def test_without_strip_and_names_with_dot_components(tmp_path):
    archive = make_tar(tmp_path / 'd.tar', [(tar_info('./x/./y.txt', b'y'), b'y')])
    assert safe_extract(archive, tmp_path / 't') == [tmp_path / 't' / 'x' / 'y.txt']
    assert (tmp_path / 't' / 'x' / 'y.txt').read_bytes() == b'y'


def test_into_existing_folder_merges(tmp_path):
    target = tmp_path / 'ds'
    (target / 'sub').mkdir(parents=True)
    (target / 'keep.txt').write_bytes(b'mine')
    (target / 'a.txt').write_bytes(b'old')
    (target / 'sub' / 'other.txt').write_bytes(b'other')
    archive = make_tar(tmp_path / 'd.tar.gz', good_tar_entries(), 'w:gz')
    safe_extract(archive, target, strip_components=1)
    assert (target / 'a.txt').read_bytes() == b'alpha'            # replaced
    assert (target / 'keep.txt').read_bytes() == b'mine'          # untouched
    assert tree(target) == ['a.txt', 'keep.txt', 'sub', 'sub/b.bin', 'sub/c.txt',
                            'sub/other.txt']


def test_failure_mid_extraction_leaves_no_half_tree(tmp_path):
    archive = make_tar(tmp_path / 'd.tar', good_tar_entries())
    seen = []

    def explode_on_third(name):
        seen.append(name)
        if len(seen) == 4:          # two folders, then a.txt written, then this one
            raise RuntimeError('interrupted')
        return True

    with pytest.raises(RuntimeError, match='interrupted'):
        safe_extract(archive, tmp_path / 'ds', members_filter=explode_on_third)
    assert tree(tmp_path) == ['d.tar']


def test_stale_temporary_of_a_dead_process_is_removed(tmp_path):
    from wsss_core.io import _host_tag
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    stale = tmp_path / f'.ds.extract.{dead.pid}@{_host_tag()}.abc123'
    (stale / 'half').mkdir(parents=True)
    live = tmp_path / f'.ds.extract.{os.getpid()}@{_host_tag()}.def456'
    live.mkdir()
    safe_extract(make_tar(tmp_path / 'd.tar', good_tar_entries()), tmp_path / 'ds')
    assert not stale.exists() and live.exists()


def test_corrupt_archive(tmp_path):
    archive = tmp_path / 'd.tar.gz'
    make_tar(archive, good_tar_entries(), 'w:gz')
    archive.write_bytes(archive.read_bytes()[:60])
    with pytest.raises(ArchiveError, match='cannot read'):
        safe_extract(archive, tmp_path / 'ds')
    (tmp_path / 'x.dat').write_bytes(b'not an archive')
    with pytest.raises(ArchiveError, match='not a tar or zip'):
        archive_format(tmp_path / 'x.dat')
    assert archive_format(make_zip(tmp_path / 'z.bin', [('a', b'a')])) == 'zip'


# ----------------------------------------------------------------------------- hostile tar
def hostile_tar_members(outside):
    """(hostile member, the words the refusal must contain)."""
    return {
        'absolute': (tar_info(str(outside / 'abs.txt'), b'pwned'), 'absolute path'),
        'dotdot': (tar_info('../x', b'pwned'), "'..' component"),
        'nested dotdot': (tar_info('a/../../x', b'pwned'), "'..' component"),
        'symlink': (tar_info('etc', kind=tarfile.SYMTYPE, linkname='/etc'), 'symbolic link'),
        'hardlink': (tar_info('hl', kind=tarfile.LNKTYPE,
                              linkname=str(outside / 'victim.txt')), 'hard link'),
        'relative hardlink': (tar_info('hl', kind=tarfile.LNKTYPE,
                                       linkname='../outside/victim.txt'), 'hard link'),
        'fifo': (tar_info('pipe', kind=tarfile.FIFOTYPE), 'FIFO'),
        'device': (tar_info('dev', kind=tarfile.CHRTYPE), 'device'),
        'backslash': (tar_info('..\\x', b'pwned'), 'backslash'),
        'drive': (tar_info('C:/x', b'pwned'), 'drive letter'),
    }


@pytest.mark.parametrize('case', ['absolute', 'dotdot', 'nested dotdot', 'symlink', 'hardlink',
                                  'relative hardlink', 'fifo', 'device', 'backslash', 'drive'])
def test_hostile_tar_refused_and_nothing_written(tmp_path, case):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'victim.txt').write_bytes(b'original')
    info, words = hostile_tar_members(outside)[case]
    # a good member first: the checks must run on every member before anything is written
    entries = [(tar_info('good.txt', b'good'), b'good'),
               (info, b'pwned' if info.isreg() else b'')]
    if case == 'symlink':       # the classic: a link, then a file written through it
        entries.append((tar_info('etc/passwd', b'pwned'), b'pwned'))
    archive = make_tar(tmp_path / 'evil.tar', entries)
    before = tree(tmp_path)
    with pytest.raises(UnsafeArchiveError, match=words) as err:
        safe_extract(archive, tmp_path / 'work' / 'ds')
    assert err.value.member == info.name and repr(info.name) in str(err.value)
    assert tree(tmp_path) == before                   # not even work/ or a temporary
    assert (outside / 'victim.txt').read_bytes() == b'original'


# ----------------------------------------------------------------------------- hostile zip
def zip_symlink(name, target):
    info = zipfile.ZipInfo(name)
    info.create_system = 3                            # Unix: external_attr holds st_mode
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


@pytest.mark.parametrize('case', ['dotdot', 'absolute', 'nested dotdot', 'symlink', 'fifo',
                                  'backslash', 'drive'])
def test_hostile_zip_refused_and_nothing_written(tmp_path, case):
    outside = tmp_path / 'outside'
    outside.mkdir()
    fifo = zipfile.ZipInfo('pipe')
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    member, words = {
        'dotdot': (('../x', b'pwned'), "'..' component"),
        'absolute': ((str(outside / 'abs.txt'), b'pwned'), 'absolute path'),
        'nested dotdot': (('a/../../x', b'pwned'), "'..' component"),
        'symlink': (zip_symlink('etc', '/etc'), 'symbolic link'),
        'fifo': ((fifo, b''), 'FIFO'),
        'backslash': (('..\\..\\x', b'pwned'), 'backslash'),
        'drive': (('C:/x', b'pwned'), 'drive letter'),
    }[case]
    archive = make_zip(tmp_path / 'evil.zip', [('good.txt', b'good'), member])
    name = member[0].filename if isinstance(member[0], zipfile.ZipInfo) else member[0]
    with zipfile.ZipFile(archive) as zf:              # the hostile name really is in there
        assert zf.namelist()[1] == name
    before = tree(tmp_path)
    with pytest.raises(UnsafeArchiveError, match=words) as err:
        safe_extract(archive, tmp_path / 'work' / 'ds')
    assert err.value.member == name
    assert tree(tmp_path) == before
