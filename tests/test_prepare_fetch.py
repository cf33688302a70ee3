"""wsss-prepare's flow for one item against a loopback server: download, verify, install,
ledger; --from; a checksum recorded at the first download; the CLI's exits."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from wsss_core.prepare.fetch import (ManualDownloadRequired, PrepareError, prepare_item,
                                     prepare_items, resolve_order)
from wsss_core.prepare.items import Download, PrepareItem, all_items
from wsss_core.prepare.ledger import item_status
from wsss_core.testing.http_server import serve

WEIGHTS = b'not really a weight file, but bytes with a known hash' * 100
SHA = hashlib.sha256(WEIGHTS).hexdigest()


def tar_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def items_for(server, **kw):
    """A weights item, an archive item and one made from both, served by ``server``."""
    weights = PrepareItem(
        name='w', kind='weights', description='weights', root='weights',
        path=f'net-{SHA[:8]}.pth', licence='test',
        downloads=(Download(f'net-{SHA[:8]}.pth', urls=(server.url('/net.pth'),),
                            sha256=kw.get('sha', SHA[:8])),))
    archive = PrepareItem(
        name='tree', kind='dataset', description='a tree', root='data', path='Tree/inner',
        install='extract', extract_to='Tree', marker='Tree/inner/a.txt', licence='test',
        downloads=(Download('tree.tgz', urls=(server.url('/tree.tgz'),)),))
    made = PrepareItem(
        name='made', kind='dataset', description='made locally', root='data',
        path='Tree/inner', marker='Tree/inner/made.txt', requires=('tree', 'w'),
        install='tests.test_prepare_fetch:install_made', licence='test')
    return {i.name: i for i in (weights, archive, made)}


def install_made(item, files, base, roots):
    """A conversion: reads the archive item's file and the weights item, writes one file."""
    src = (base / 'Tree' / 'inner' / 'a.txt').read_text()
    size = (roots['weights'] / f'net-{SHA[:8]}.pth').stat().st_size
    out = base / 'Tree' / 'inner' / 'made.txt'
    out.write_text(f'{src}+{size}')
    return [out]


def install_made_then_ctrl_c(item, files, base, roots):
    """A conversion interrupted after it wrote the item's marker file."""
    install_made(item, files, base, roots)
    raise KeyboardInterrupt


def install_refusing(item, files, base, roots):
    """A conversion that refuses its input before writing anything."""
    raise ValueError('these are not the files this item is made from')


def install_top(item, files, base, roots):
    """Made from 'made' only."""
    out = base / 'Tree' / 'inner' / 'top.txt'
    out.write_text((base / 'Tree' / 'inner' / 'made.txt').read_text() + '+top')
    return [out]


@pytest.fixture
def roots(tmp_path):
    return {'data': tmp_path / 'data', 'weights': tmp_path / 'weights'}


FILES = {'/net.pth': WEIGHTS, '/tree.tgz': tar_bytes({'inner/a.txt': b'A', 'inner/b/c.txt': b'C'})}


def test_weights_item_is_downloaded_verified_installed_and_recorded(roots):
    with serve(FILES) as server:
        items = items_for(server)
        assert prepare_item(items['w'], roots=roots, progress=False, report=lambda m: None) \
            == 'installed'
        dest = roots['weights'] / f'net-{SHA[:8]}.pth'
        assert dest.read_bytes() == WEIGHTS
        assert not (roots['weights'] / '.downloads' / dest.name).exists()   # not kept
        ledger = json.loads((roots['weights'] / '.wsss-prepare' / 'w.json').read_text())
        assert ledger['sha256'] == SHA and ledger['files'] == {dest.name: len(WEIGHTS)}
        assert item_status(items['w'], roots['weights'], deep=True)[0] == 'present'
        # present: a second call asks the server nothing
        before = len(server.requests)
        assert prepare_item(items['w'], roots=roots, progress=False,
                            report=lambda m: None) == 'present'
        assert len(server.requests) == before


def test_a_wrong_checksum_leaves_nothing_under_the_final_name(roots):
    with serve(FILES) as server:
        item = items_for(server, sha='deadbeef')['w']
        with pytest.raises(PrepareError, match='deadbeef'):
            prepare_item(item, roots=roots, progress=False, report=lambda m: None)
    assert not (roots['weights'] / item.path).exists()
    assert item_status(item, roots['weights'])[0] == 'missing'


def test_requirements_come_first_and_a_conversion_sees_their_files(roots):
    with serve(FILES) as server:
        items = items_for(server)
        assert [i.name for i in resolve_order(['made'], items)] == ['tree', 'w', 'made']
        done = prepare_items(['made'], items, roots=roots, progress=False, report=lambda m: None)
    assert done == {'tree': 'installed', 'w': 'installed', 'made': 'installed'}
    inner = roots['data'] / 'Tree' / 'inner'
    assert (inner / 'a.txt').read_text() == 'A' and (inner / 'b' / 'c.txt').read_text() == 'C'
    assert (inner / 'made.txt').read_text() == f'A+{len(WEIGHTS)}'
    assert item_status(items['made'], roots['data'])[0] == 'present'
    # the archive item's ledger lists what the extraction wrote
    ledger = json.loads((roots['data'] / '.wsss-prepare' / 'tree.json').read_text())
    assert set(ledger['files']) == {'Tree/inner/a.txt', 'Tree/inner/b/c.txt'}


def test_an_install_interrupted_after_its_marker_is_corrupt_until_rerun(roots):
    import dataclasses
    with serve(FILES) as server:
        items = items_for(server)
        cut = dict(items, made=dataclasses.replace(
            items['made'], install='tests.test_prepare_fetch:install_made_then_ctrl_c'))
        with pytest.raises(KeyboardInterrupt):
            prepare_items(['made'], cut, roots=roots, progress=False, report=lambda m: None)
        assert (roots['data'] / 'Tree' / 'inner' / 'made.txt').is_file()    # the marker
        status, detail = item_status(items['made'], roots['data'])
        assert status == 'corrupt' and 'did not finish' in detail         # not 'unverified'
        said = []
        assert prepare_items(['made'], items, roots=roots, progress=False,
                             report=said.append)['made'] == 'installed'
    assert any('made: corrupt' in line and 'installing again' in line for line in said)
    assert item_status(items['made'], roots['data'])[0] == 'present'
    assert not list((roots['data'] / '.wsss-prepare').glob('*.installing'))


def test_a_requirement_put_in_place_by_hand_is_used_not_fetched_again(roots):
    with serve(FILES) as server:
        items = items_for(server)
        inner = roots['data'] / 'Tree' / 'inner'
        inner.mkdir(parents=True)
        (inner / 'a.txt').write_text('by hand')          # 'tree' unverified: no ledger
        said = []
        done = prepare_items(['made'], items, roots=roots, progress=False, report=said.append)
        assert done == {'tree': 'present', 'w': 'installed', 'made': 'installed'}
        assert [r for r in server.requests if r.path == '/tree.tgz'] == []
        assert (inner / 'made.txt').read_text() == f'by hand+{len(WEIGHTS)}'
        assert any(line.startswith('tree: ') and 'used as it is' in line for line in said)
        # named, it is installed (and recorded)
        assert prepare_items(['tree'], items, roots=roots, progress=False,
                             report=lambda m: None) == {'tree': 'installed'}
        assert item_status(items['tree'], roots['data'])[0] == 'present'


def test_a_hand_placed_requirement_needs_none_of_its_own(roots):
    import dataclasses
    with serve(FILES) as server:
        items = items_for(server)
        items['top'] = dataclasses.replace(
            items['made'], name='top', marker='Tree/inner/top.txt', requires=('made',),
            install='tests.test_prepare_fetch:install_top')
        inner = roots['data'] / 'Tree' / 'inner'
        inner.mkdir(parents=True)
        (inner / 'made.txt').write_text('by hand')       # 'made' unverified; tree, w absent
        done = prepare_items(['top'], items, roots=roots, progress=False, report=lambda m: None)
        assert done == {'made': 'present', 'top': 'installed'}
        assert server.requests == []                     # neither tree nor w was fetched
    assert (inner / 'top.txt').read_text() == 'by hand+top'


def test_a_reinstall_refused_before_it_wrote_leaves_the_item_present(roots):
    import dataclasses
    with serve(FILES) as server:
        items = items_for(server)
        prepare_items(['made'], items, roots=roots, progress=False, report=lambda m: None)
        refusing = dataclasses.replace(items['made'],
                                       install='tests.test_prepare_fetch:install_refusing')
        with pytest.raises(ValueError, match='not the files'):
            prepare_item(refusing, roots=roots, force=True, progress=False,
                         report=lambda m: None)
    assert item_status(items['made'], roots['data'])[0] == 'present'


def test_a_checksum_recorded_at_the_first_download_guards_the_next(roots):
    with serve(FILES) as server:
        items = items_for(server)
        prepare_item(items['tree'], roots=roots, progress=False, report=lambda m: None)
    recorded = json.loads((roots['data'] / '.wsss-prepare' / 'tree.json').read_text())
    assert recorded['downloads']['tree.tgz']['sha256'] == \
        hashlib.sha256(FILES['/tree.tgz']).hexdigest()
    changed = dict(FILES, **{'/tree.tgz': tar_bytes({'inner/a.txt': b'Z'})})
    with serve(changed) as server:
        items = items_for(server)
        with pytest.raises(PrepareError, match='sha256'):
            prepare_item(items['tree'], roots=roots, force=True, progress=False,
                         report=lambda m: None)
    assert (roots['data'] / 'Tree' / 'inner' / 'a.txt').read_text() == 'A'   # untouched


def test_from_path_verifies_and_keeps_the_users_file(roots, tmp_path):
    given = tmp_path / 'downloaded' / 'anything.pth'
    given.parent.mkdir()
    given.write_bytes(WEIGHTS)
    with serve({}) as server:      # nothing served: --from must not touch the network
        item = items_for(server)['w']
        prepare_item(item, roots=roots, from_path=given, progress=False, report=lambda m: None)
        assert server.requests == []
    assert given.read_bytes() == WEIGHTS and (roots['weights'] / item.path).is_file()
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'other bytes')
    with pytest.raises(PrepareError, match='is not the expected'):
        prepare_item(item, roots=roots, from_path=bad, progress=False, report=lambda m: None)


def test_a_manual_item_says_how_to_get_it(roots):
    item = all_items(plugin_items=[])['psa-resnet38']
    with pytest.raises(ManualDownloadRequired, match='--from PATH'):
        prepare_item(item, roots=roots, progress=False, report=lambda m: None)


def test_cli_list_verify_and_exits(roots, monkeypatch, capsys, tmp_path):
    from wsss_core.prepare import cli
    with serve(FILES) as server:
        items = items_for(server)
        monkeypatch.setattr('wsss_core.prepare.items.all_items', lambda *a, **k: items)
        base = ['--data-root', str(roots['data']), '--weights-root', str(roots['weights']),
                '--no-progress']
        assert cli.main(['list'] + base) == 0
        out = capsys.readouterr().out
        assert 'w ' in out and 'missing' in out and 'made locally' in out
        assert cli.main(['made'] + base) == 0
        assert cli.main(['nope'] + base) == 2
        assert 'no prepare item' in capsys.readouterr().err
        assert cli.main(['--verify', 'w', 'tree'] + base) == 0
        (roots['weights'] / items['w'].path).write_bytes(b'x' * len(WEIGHTS))  # same size
        assert cli.main(['--verify', 'w'] + base) == 1
        assert 'corrupt' in capsys.readouterr().out
