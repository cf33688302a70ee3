"""``wsss-report WORK_DIR``: (re)build ``WORK_DIR/report.html`` from a run's work dir;
``wsss-report --compare WORK_DIR...``: one page comparing the methods of several runs.

    wsss-report work_dirs/quickstart                 # 6 sample images per split
    wsss-report work_dirs/quickstart --num-images 12
    wsss-report --compare work_dirs/quickstart work_dirs/oaa_synthetic     # -> first/compare.html
    wsss-report --compare work_dirs/zoo --out comparisons/zoo --num-images 4

``--compare`` writes ``compare.html`` (and PNGs under ``compare/``) into ``--out`` or the first
work dir; a work dir is one method, or the methods its config's ``compare`` entry names (see
:mod:`wsss_core.visualization.compare`).  The plugins named by the runs' ``config.py`` (all
installed ones if one names none) are loaded first, so that the run's dataset can be built to
show the sample images. Exit status: 0 when the page was written, 2 on a usage error or a
missing work dir (or a folder that no run wrote: neither config.py nor a stage manifest).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='wsss-report', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('work_dirs', nargs='+', metavar='WORK_DIR',
                   help='the work dir of a run (holds config.py and stage dirs); several with '
                        '--compare')
    p.add_argument('--compare', action='store_true',
                   help='write one page comparing the methods of the work dirs '
                        '(compare.html) instead of a run report')
    p.add_argument('--out', default=None, metavar='DIR',
                   help='with --compare: write DIR/compare.html (default: the first work dir)')
    p.add_argument('--num-images', type=int, default=6,
                   help='sample images per split (the first ones of the split; default 6)')
    p.add_argument('--cell-size', type=int, default=128,
                   help='pixel size of one cell of a sample sheet (default 128)')
    p.add_argument('--no-plugins', action='store_true',
                   help="register only the core's components (skip plugin discovery)")
    return p


def _plugins_of(work_dirs: List[Path]) -> Optional[List[str]]:
    """The plugins the runs' configs name (in order, once each); None (all) if one names none
    or has no readable config."""
    from .visualization.report import load_work_dir_config
    names: List[str] = []
    for work_dir in work_dirs:
        cfg, _ = load_work_dir_config(work_dir)
        plugins = cfg.get('plugins') if cfg is not None else None
        if plugins is None:
            return None
        names += [str(n) for n in plugins if str(n) not in names]
    return names


def _load_plugins(work_dirs: List[Path]) -> None:
    """Register the runs' plugins; a problem is reported and the report goes on without them."""
    enabled = _plugins_of(work_dirs)
    try:
        from .plugin_loader import load_plugins
        load_plugins(enabled)
    except Exception as exc:  # the tables do not need any plugin
        print(f'wsss-report: plugins not loaded ({type(exc).__name__}: {exc}); sample images '
              'of plugin datasets may be missing', file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_images < 0:
        parser.error('--num-images must be 0 or more')
    if args.cell_size < 16:
        parser.error('--cell-size must be at least 16')
    if len(args.work_dirs) > 1 and not args.compare:
        parser.error('several work dirs: add --compare to compare them')
    if args.out is not None and not args.compare:
        parser.error('--out goes with --compare')
    work_dirs = [Path(wd) for wd in args.work_dirs]
    from .config import is_work_dir, not_a_work_dir
    for work_dir in work_dirs:
        if not work_dir.is_dir():
            print(f'wsss-report: work dir not found: {work_dir}', file=sys.stderr)
            return 2
        if not is_work_dir(work_dir):
            print(f'wsss-report: {not_a_work_dir(work_dir)}', file=sys.stderr)
            return 2
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')
    if not args.no_plugins:
        _load_plugins(work_dirs)
    if args.compare:
        from .visualization.compare import build_comparison
        path = build_comparison(work_dirs, out_dir=args.out, num_images=args.num_images,
                                cell_size=args.cell_size)
        print(f'comparison: {path}')
        return 0
    from .visualization.report import build_report
    path = build_report(work_dirs[0], num_images=args.num_images, cell_size=args.cell_size)
    print(f'report: {path}')
    return 0


if __name__ == '__main__':  # python -m wsss_core.report_cli
    sys.exit(main())
