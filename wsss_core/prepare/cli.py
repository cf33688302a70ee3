"""``wsss-prepare``: fetch, verify and convert the data sets and weight files configs need.

::

    wsss-prepare list                        # every item: size, source, status under the roots
    wsss-prepare voc12-aug torchvision-vgg16 # these items (and what they require)
    wsss-prepare --for oaa::voc12_vgg16.py   # exactly the items that config names
    wsss-prepare psa-resnet38 --from FILE    # a file downloaded by hand (verified, converted)
    wsss-prepare --verify [ITEM...]          # re-check installed items (SHA-256 of files)
    wsss-prepare saliency --from DIR_OR_ARCHIVE --split train_aug [--dest saliency_aug]
                                             # check maps against a split, install them

Roots: ``--root DIR`` (both), ``--data-root`` / ``--weights-root``, else ``$WSSS_DATA`` /
``$WSSS_WEIGHTS`` (defaults ``~/.cache/wsss/data`` and ``~/.cache/wsss/weights``).  A config
refers to an item as ``'item:NAME'`` (:mod:`wsss_core.prepare.refs`); ``wsss-run`` resolves
it under the same roots, so set the variables (or use the defaults) for both commands.

Exit status: 0 done, 1 a failure (download, checksum, conversion; or ``--verify`` found a
corrupt item), 2 a usage error (unknown item, a manual download without ``--from``).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

__all__ = ['main', 'build_parser', 'format_item_table']


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='wsss-prepare',
        description='Fetch, verify and convert the data sets and weight files wsss configs '
                    "need ('item:NAME' in a config). 'wsss-prepare list' shows the items.")
    p.add_argument('items', nargs='*', metavar='ITEM',
                   help="item names, or 'list' to list them all")
    p.add_argument('--for', dest='for_config', metavar='CONFIG',
                   help='prepare exactly the items this config names (e.g. oaa::voc12_vgg16.py)')
    p.add_argument('--from', dest='from_path', metavar='PATH',
                   help='take the download(s) from this file or folder instead of the network '
                        '(for items only a person can download)')
    p.add_argument('--verify', action='store_true',
                   help='check installed items (file sizes, SHA-256 of weight files); exit 1 '
                        'if one is corrupt')
    p.add_argument('--root', metavar='DIR', help='put data and weights under DIR')
    p.add_argument('--data-root', metavar='DIR', help='data root (default $WSSS_DATA)')
    p.add_argument('--weights-root', metavar='DIR', help='weights root (default $WSSS_WEIGHTS)')
    p.add_argument('--force', action='store_true', help='install again items that are present')
    p.add_argument('--keep-downloads', action='store_true',
                   help='keep the downloaded archives under <root>/.downloads/')
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    p.add_argument('--split', default='train_aug',
                   help="saliency: the split whose images need maps (default train_aug)")
    p.add_argument('--dest', default='saliency',
                   help="saliency: folder under the VOC root to install into (the configs' "
                        "saliency_dir; default 'saliency')")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from .fetch import ManualDownloadRequired, PrepareError, prepare_items
    from .items import all_items
    roots = {'data': args.data_root or args.root, 'weights': args.weights_root or args.root}
    roots = {k: v for k, v in roots.items() if v}
    try:
        items = all_items()
        names = list(args.items)
        if names[:1] == ['list']:
            print(format_item_table(items.values(), roots))
            return 0
        if names[:1] == ['saliency']:
            return _saliency(args, items, roots)
        if args.for_config:
            named = _config_item_names(args.for_config, items)
            if not named and not names:
                return 0          # the config needs nothing wsss-prepare installs
            names += named
        if args.verify:
            return _verify(names or list(items), items, roots)
        if not names:
            build_parser().print_usage(sys.stderr)
            print("wsss-prepare: name items, --for CONFIG, or 'list'", file=sys.stderr)
            return 2
        unknown = [n for n in names if n not in items]
        if unknown:
            from .items import get_item
            for name in unknown:
                try:
                    get_item(name, items)
                except KeyError as exc:
                    print(f'wsss-prepare: {exc.args[0]}', file=sys.stderr)
            return 2
        prepare_items(list(dict.fromkeys(names)), items, roots=roots,
                      from_path=args.from_path, force=args.force,
                      progress=not args.no_progress, keep_downloads=args.keep_downloads)
    except ManualDownloadRequired as exc:
        print(f'wsss-prepare: {exc}', file=sys.stderr)
        return 2
    except (PrepareError, OSError, ValueError, KeyError) as exc:
        print(f'wsss-prepare: {exc}', file=sys.stderr)
        return 1
    return 0


def _saliency(args, items, roots) -> int:
    """``wsss-prepare saliency``: maps checked against the split of the installed VOC tree."""
    from .items import root_dir
    from .saliency import install_saliency_maps
    if not args.from_path:
        print('wsss-prepare: saliency needs --from DIR_OR_ARCHIVE (the maps, <id>.png)',
              file=sys.stderr)
        return 2
    voc = items['voc12']
    data_root = voc.location(root_dir('data', roots.get('data')))
    written = install_saliency_maps(args.from_path, data_root, args.split, dest=args.dest)
    print(f'saliency: {len(written)} maps of split {args.split} installed in '
          f'{data_root / args.dest} (configs: saliency_dir={args.dest!r})')
    return 0


def _config_item_names(spec: str, items) -> List[str]:
    """The items config ``spec`` names: in the config itself and in its stages as the
    pipeline builds them (a recipe's weights, e.g. DeepLab's COCO init, live only there)."""
    from ..config import load_config
    from .refs import config_items
    cfg = load_config(spec)
    scope = dict(config=cfg.to_dict(), built=_built_item_scope(spec, cfg))
    named = [item.name for item, _ in config_items(scope, items)]
    if not named:
        print(f'wsss-prepare: {spec} names no item (it reads nothing that wsss-prepare '
              'installs, or names paths directly)', file=sys.stderr)
    return named


def _built_item_scope(spec: str, cfg) -> dict:
    """:meth:`Pipeline.item_scope` of the config: plugins loaded, stages built (nothing is
    written; the work dir is never created).  A base config without stages: nothing."""
    from ..pipeline.pipeline import Pipeline
    from ..plugin_loader import load_plugins
    if not cfg.get('stages'):
        return {}
    load_plugins(cfg.get('plugins'))
    try:
        pipeline = Pipeline(cfg, work_dir=os.devnull)
    except Exception as exc:   # a build error: say which config, as wsss-run would
        raise ValueError(f'{spec}: its stages do not build: {exc}') from exc
    return pipeline.item_scope()


def _verify(names, items, roots) -> int:
    from .items import get_item, root_dir
    from .ledger import item_status
    bad = 0
    for name in names:
        item = get_item(name, items)
        status, detail = item_status(item, root_dir(item.root, roots.get(item.root)), deep=True)
        print(f'{name:<28} {status:<10} {detail}')
        bad += status == 'corrupt'
    return 1 if bad else 0


def format_item_table(items, roots=None) -> str:
    """One line per item: name, kind, download size, checksum, status under the roots."""
    from .items import root_dir
    from .ledger import item_status
    roots = roots or {}
    rows = [('item', 'kind', 'download', 'checksum', 'status', 'where')]
    for item in items:
        base = root_dir(item.root, roots.get(item.root))
        status, _ = item_status(item, base)
        mb = item.download_mb
        size = ('made locally' if not item.downloads else
                f'{mb / 1000:.1f} GB' if mb and mb >= 1000 else
                f'{mb:.0f} MB' if mb else '?')
        if item.manual_only:
            size += ' (by hand)'
        checks = sorted({d.checksum.split(' ')[0] for d in item.downloads}) or ['-']
        rows.append((item.name, item.kind, size, '/'.join(checks), status,
                     os.fspath(item.location(base))))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ['  '.join(f'{c:<{w}}' for c, w in zip(r[:5], widths)) + '  ' + r[5] for r in rows]
    return '\n'.join(lines) + (f"\nroots: data {root_dir('data', roots.get('data'))}, "
                               f"weights {root_dir('weights', roots.get('weights'))}")


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
