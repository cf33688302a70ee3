"""``wsss-report WORK_DIR``: (re)build ``WORK_DIR/report.html`` from a run's work dir.

    wsss-report work_dirs/quickstart                 # 6 sample images per split
    wsss-report work_dirs/quickstart --num-images 12

The plugins named by the run's ``config.py`` (all installed ones if it names none) are loaded
first, so that the run's dataset can be built to show the sample images. Exit status: 0 when
the report was written, 2 on a usage error or a missing work dir.
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
    p.add_argument('work_dir', help='the work dir of a run (holds config.py and stage dirs)')
    p.add_argument('--num-images', type=int, default=6,
                   help='sample images per split (the first ones of the split; default 6)')
    p.add_argument('--cell-size', type=int, default=128,
                   help='pixel size of one cell of a sample sheet (default 128)')
    p.add_argument('--no-plugins', action='store_true',
                   help="register only the core's components (skip plugin discovery)")
    return p


def _load_plugins(work_dir: Path) -> None:
    """Register the run's plugins; a problem is reported and the report goes on without them."""
    from .visualization.report import load_work_dir_config
    cfg, _ = load_work_dir_config(work_dir)
    try:
        from .plugin_loader import load_plugins
        load_plugins(cfg.get('plugins') if cfg is not None else None)
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
    work_dir = Path(args.work_dir)
    if not work_dir.is_dir():
        print(f'wsss-report: work dir not found: {work_dir}', file=sys.stderr)
        return 2
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')
    if not args.no_plugins:
        _load_plugins(work_dir)
    from .visualization.report import build_report
    path = build_report(work_dir, num_images=args.num_images, cell_size=args.cell_size)
    print(f'report: {path}')
    return 0


if __name__ == '__main__':  # python -m wsss_core.report_cli
    sys.exit(main())
