"""Wall time and peak memory per stage, read from the manifests of existing work dirs.

Nothing is run: every ``<work_dir>/<stage>/manifest.json`` gives the stage's ``duration_s``
(what the Pipeline measured around ``stage.run``) and, where the run recorded it, its peak
memory (any manifest field whose name holds ``peak``, also one level down, e.g.
``resources.peak_rss_mb``); otherwise the peak memory is reported as not recorded.  A stage
directory with ``state.json`` but no manifest is listed as unfinished (running or
interrupted).  Stages are listed in the order they started (``finished - duration_s``);
each one's share is its time over the sum of the work dir's finished stages.

    .venv/bin/python bench/stage_times.py work_dirs/quickstart work_dirs/oaa_synthetic [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional, Sequence

DEFAULT_WORK_DIRS = ('work_dirs/quickstart', 'work_dirs/oaa_synthetic',
                     'work_dirs/nsrom_synthetic', 'work_dirs/edam_synthetic',
                     'work_dirs/moana_synthetic', 'work_dirs/moana_synthetic_wsol',
                     'work_dirs/getam_synthetic')
NOT_RECORDED = 'not recorded'


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def peak_memory(manifest: dict) -> dict:
    """The manifest's peak-memory fields (name holds 'peak', top level or one level down)."""
    out = {}
    for key, value in manifest.items():
        if 'peak' in key.lower():
            out[key] = value
        elif isinstance(value, dict):
            out.update({f'{key}.{k}': v for k, v in value.items() if 'peak' in str(k).lower()})
    return out


def stage_records(work_dir) -> List[dict]:
    """One record per stage directory of ``work_dir`` (finished ones first, by start time)."""
    done, unfinished = [], []
    for d in sorted(p for p in Path(work_dir).iterdir() if p.is_dir()):
        manifest = _read_json(d / 'manifest.json')
        if manifest is not None and 'duration_s' in manifest:
            duration = float(manifest['duration_s'])
            done.append(dict(stage=d.name, type=manifest.get('type'), finished=True,
                             duration_s=duration,
                             started=float(manifest.get('finished', 0.0)) - duration,
                             peak_memory=peak_memory(manifest) or NOT_RECORDED))
        elif (d / 'state.json').is_file():
            state = _read_json(d / 'state.json') or {}
            unfinished.append(dict(stage=d.name, type=None, finished=False, duration_s=None,
                                   started=state.get('started'), peak_memory=NOT_RECORDED,
                                   state=state.get('status', 'unknown')))
    done.sort(key=lambda r: r['started'])
    total = sum(r['duration_s'] for r in done)
    for r in done:
        r['share'] = r['duration_s'] / total if total > 0 else None
    return done + unfinished


def collect(work_dirs: Sequence[str] = DEFAULT_WORK_DIRS) -> dict:
    """Per work dir: its stage records and total; missing or empty work dirs in ``skipped``."""
    found, skipped = {}, []
    for wd in work_dirs:
        path = Path(wd)
        if not path.is_dir():
            skipped.append(dict(work_dir=str(wd), reason='no such directory'))
            continue
        records = stage_records(path)
        if not records:
            skipped.append(dict(work_dir=str(wd), reason='no stage manifests or states'))
            continue
        found[str(wd)] = dict(stages=records, total_s=sum(r['duration_s'] or 0.0
                                                          for r in records))
    return dict(work_dirs=found, skipped=skipped)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('work_dirs', nargs='*', default=list(DEFAULT_WORK_DIRS))
    p.add_argument('--json', default=None, help='write the figures here')
    args = p.parse_args()
    res = collect(args.work_dirs)
    for wd, run in res['work_dirs'].items():
        print(f"{wd}: {run['total_s']:.1f} s in finished stages")
        for r in run['stages']:
            if r['finished']:
                print(f"  {r['stage']:<28}{r['duration_s']:10.1f} s {r['share']:7.1%}  "
                      f"peak memory: {r['peak_memory']}")
            else:
                print(f"  {r['stage']:<28}{'-':>10}   unfinished ({r['state']})")
    for s in res['skipped']:
        print(f"skipped {s['work_dir']}: {s['reason']}")
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(res, fh, indent=2)


if __name__ == '__main__':
    main()
