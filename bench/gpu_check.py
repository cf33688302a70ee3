"""One prepared check of every CUDA path, in one command, within a time limit.

    scripts/gpu_check.sh [--time-limit 480] [--out DIR] [--device cuda|cpu] [--only NAME ...]
        [--small] [--threads N] [--list]
    (= .venv/bin/python bench/gpu_check.py ...)

On one GPU it runs, in this order, each check of :func:`all_checks` (``--list`` prints them):
every plugin's training stages for a few iterations with ``amp='auto'`` and channels-last
where offered, float16 with loss scaling as a second pass (``train_*``,
:mod:`gpu_check_stages`); EDAM's CMA with the reference's attention dropout on the fused
SDPA kernel and its peak memory against explicit attention at 46 x 46 tokens; the GETAM map
and its vmapped backward; batched vs loop CAMs; channels-last DeepLab steps; a one-GPU
``torchrun`` with ``sync_bn`` (NCCL, SyncBatchNorm, DDP); FLOP/s vs the matmul peak; pinned
vs pageable loading; data vs model throughput; TestSegmentor's CRF workers fed by the
network on the GPU; ``compile=True`` on the quickstart classifier (:mod:`gpu_check_paths`).
Each check compares the float32 outputs on the device with the CPU's on the same weights
and inputs (TF32 off) to a tolerance it states, requires finite losses, and records its
figures.

Outputs, all under ``--out`` (default ``$OUT`` if set, else a fresh temporary folder):
``gpu_check.json`` (device, versions, one record per check: status passed / failed /
skipped, reason, seconds, details; the traceback of a check that raised) and
``gpu_column.md`` (the GPU column of ``bench/RESULTS.md``, the device named in its header).
Work dirs (``work/``), the data cache (``WSSS_CACHE``), temporary files, and the inductor,
Triton and CUDA kernel caches go there too: the script writes nothing else.

Time limit: no check starts after ``--time-limit`` minus a margin (the rest are skipped,
with the reason); a watchdog stops the run at the limit itself (the running check is
recorded as failed, the files are written, exit code 1).

Exit codes: 0 every check that ran passed (some may be skipped: see the list printed at the
end); 1 a check failed or the watchdog stopped the run; 2 bad arguments; 3 ``--device
cuda`` but no CUDA device is visible: nothing was checked (the JSON says ``no-cuda``).

``--device cpu`` runs the same checks on the CPU, CPU against CPU, with ``amp='auto'``
meaning float32 there: it only exercises the script (and the CPU autocast probe); its
figures are not a GPU column.  ``--small`` shrinks every size for that.
"""
from __future__ import annotations

import sys

if __name__ == '__main__':  # one module object whether run or imported (CheckSkipped ...)
    sys.modules.setdefault('gpu_check', sys.modules[__name__])

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Dict, List, Optional, Sequence  # noqa: E402

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_NO_CUDA = 0, 1, 2, 3
DEFAULT_TIME_LIMIT = 480.0
JSON_NAME, COLUMN_NAME = 'gpu_check.json', 'gpu_column.md'
NO_CUDA = 'no CUDA device: nothing checked'
NOT_SELECTED = 'not selected (--only)'

#: environment variables pointed inside --out (caches and temporary files) -> sub-folder
ISOLATED_DIRS = dict(WSSS_CACHE='wsss_cache', TMPDIR='tmp', TORCHINDUCTOR_CACHE_DIR='inductor',
                     TRITON_CACHE_DIR='triton', CUDA_CACHE_PATH='cuda_cache',
                     XDG_CACHE_HOME='xdg_cache', MPLCONFIGDIR='matplotlib', HF_HOME='hf',
                     TORCH_HOME='torch_home')


# ----------------------------------------------------------------------------- a check
class CheckSkipped(Exception):
    """Raised by a check that cannot run here; the message is the reason."""


class Findings:
    """What one check measured (``details``), what it requires (``problems``: the check
    fails if any) and its rows of the GPU column (``column``)."""

    def __init__(self):
        self.details: dict = {}
        self.problems: List[str] = []
        self.tracebacks: List[str] = []
        self.column: List[dict] = []

    def problem(self, what: str, trace: Optional[str] = None) -> None:
        self.problems.append(what)
        if trace:
            self.tracebacks.append(trace)

    def require(self, ok: bool, what: str) -> bool:
        if not ok:
            self.problem(what)
        return bool(ok)

    def finite(self, what: str, values: Sequence) -> bool:
        bad = [v for v in values if v is None or not math.isfinite(float(v))]
        return self.require(not bad and len(values) > 0,
                            f'{what}: {len(bad)} of {len(values)} values not finite'
                            if values else f'{what}: no values')

    def close(self, what: str, got, want, rtol: float, atol: float) -> bool:
        """Require ``|got - want| <= atol + rtol |want|`` element-wise (numbers or tensors);
        the largest difference and the tolerance go to ``details['comparisons']``."""
        import torch
        if got is None:
            return self.require(False, f'{what}: missing on the device')
        g = torch.as_tensor(got, dtype=torch.float64).cpu()
        w = torch.as_tensor(want, dtype=torch.float64).cpu()
        if g.shape != w.shape:
            return self.require(False, f'{what}: shapes {tuple(g.shape)} vs {tuple(w.shape)}')
        diff = (g - w).abs()
        excess = (diff - (atol + rtol * w.abs())).max().item() if diff.numel() else 0.0
        ok = bool(torch.isfinite(g).all()) and excess <= 0
        self.details.setdefault('comparisons', []).append(dict(
            what=what, max_abs_diff=diff.max().item() if diff.numel() else 0.0,
            max_abs_value=w.abs().max().item() if w.numel() else 0.0, rtol=rtol, atol=atol,
            ok=ok))
        return self.require(ok, f'{what}: max |difference| {diff.max().item():.3g} beyond '
                                f'atol {atol:g} + rtol {rtol:g} x |reference|')

    def row(self, row: str, text: str) -> None:
        """One row of the GPU column: ``row`` as in bench/RESULTS.md, ``text`` the figures."""
        self.column.append(dict(row=row, text=text))


@dataclass
class Check:
    name: str
    what: str
    run: Callable[['CheckContext', Findings], None]


@dataclass
class CheckContext:
    device: str
    out: Path
    small: bool = False
    threads: int = 1
    started: float = field(default_factory=time.monotonic)
    time_limit: float = DEFAULT_TIME_LIMIT

    @property
    def cuda(self) -> bool:
        return self.device.startswith('cuda')

    def work_dir(self, name: str) -> Path:
        path = self.out / 'work' / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def remaining(self) -> float:
        return self.time_limit - (time.monotonic() - self.started)


def check_record(name: str, what: str, status: str, reason: str = '', seconds: float = 0.0,
                 findings: Optional[Findings] = None, trace: Optional[str] = None) -> dict:
    rec = dict(name=name, what=what, status=status, reason=reason, seconds=round(seconds, 2),
               details=findings.details if findings else {},
               column=findings.column if findings else [])
    traces = ([trace] if trace else []) + (findings.tracebacks if findings else [])
    if traces:
        rec['traceback'] = '\n'.join(traces)
    return rec


def start_margin(time_limit: float) -> float:
    """No check starts in the last ``min(30 s, limit / 10)`` of the time limit."""
    return min(30.0, time_limit / 10)


def run_checks(checks: Sequence[Check], ctx: CheckContext, log=print,
               progress: Optional[dict] = None) -> List[dict]:
    """Run ``checks`` in order; one record each.  A check that raises is recorded as failed
    (message and traceback) and the next one runs; once less than :func:`start_margin` of
    the time limit is left, the remaining checks are recorded as skipped.  ``progress``
    (if given) holds the records so far and the running check, for the watchdog."""
    records: List[dict] = [] if progress is None else progress.setdefault('records', [])
    for check in checks:
        left = ctx.remaining()
        if left < start_margin(ctx.time_limit):
            spent = ctx.time_limit - left
            records.append(check_record(check.name, check.what, 'skipped',
                                        f'time limit: {spent:.0f} s of {ctx.time_limit:.0f} s '
                                        'spent before it could start'))
            log(f'[gpu_check] {check.name}: skipped (time limit)')
            continue
        if progress is not None:
            progress['running'] = (check, time.monotonic())
        log(f'[gpu_check] {check.name}: {check.what} ...', flush=True)
        findings, t0 = Findings(), time.monotonic()
        try:
            check.run(ctx, findings)
            status = 'failed' if findings.problems else 'passed'
            rec = check_record(check.name, check.what, status, '; '.join(findings.problems),
                               time.monotonic() - t0, findings)
        except CheckSkipped as exc:
            rec = check_record(check.name, check.what, 'skipped', str(exc),
                               time.monotonic() - t0, findings)
        except Exception as exc:  # one failing check must not hide the others
            reason = f'{type(exc).__name__}: {exc}'
            if findings.problems:
                reason = '; '.join(findings.problems + [reason])
            rec = check_record(check.name, check.what, 'failed', reason, time.monotonic() - t0,
                               findings, traceback.format_exc())
        records.append(rec)
        if progress is not None:
            progress['running'] = None
        log(f"[gpu_check] {check.name}: {rec['status']} in {rec['seconds']:.1f} s"
            + (f" ({rec['reason'][:300]})" if rec['reason'] else ''), flush=True)
        _release_memory()
    return records


def _release_memory() -> None:
    import gc
    gc.collect()
    if 'torch' in sys.modules:
        import torch
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- the checks
def all_checks() -> List[Check]:
    """Every check, in the order they run (the cheap, broad ones first)."""
    import gpu_check_paths as paths
    from gpu_check_stages import STAGE_CHECKS, run_training_check

    def training(name):
        return lambda ctx, f: run_training_check(ctx, f, name)

    checks = [Check(name, spec[0], training(name)) for name, spec in STAGE_CHECKS.items()]
    return checks + [Check(name, what, fn) for name, what, fn in paths.PATH_CHECKS]


def check_names() -> List[str]:
    import gpu_check_paths as paths
    from gpu_check_stages import STAGE_CHECKS
    return list(STAGE_CHECKS) + [name for name, _, _ in paths.PATH_CHECKS]


# ----------------------------------------------------------------------------- environment
def isolate(out: Path) -> Dict[str, str]:
    """Point every cache and temporary folder inside ``out`` (before torch is imported);
    returns the variables set."""
    env = {}
    for var, sub in ISOLATED_DIRS.items():
        path = out / sub
        path.mkdir(parents=True, exist_ok=True)
        env[var] = str(path)
    env.update(HF_HUB_OFFLINE='1', PYTHONDONTWRITEBYTECODE='1', MPLBACKEND='Agg')
    os.environ.update(env)
    tempfile.tempdir = env['TMPDIR']
    return env


def environment(device: str) -> dict:
    """Device name, versions and precision settings, for the JSON."""
    import torch
    info = dict(device=device, python=platform.python_version(), torch=torch.__version__,
                cuda_runtime=torch.version.cuda, cuda_available=torch.cuda.is_available(),
                cpu=_cpu_name(), cpus=os.cpu_count(), hostname=platform.node())
    if device.startswith('cuda') and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(device_name=props.name, capability=f'{props.major}.{props.minor}',
                    memory_gib=round(props.total_memory / 2 ** 30, 1),
                    cudnn=torch.backends.cudnn.version(),
                    bf16_supported=torch.cuda.is_bf16_supported(),
                    nccl=_nccl_version(),
                    tf32=dict(matmul=torch.backends.cuda.matmul.allow_tf32,
                              cudnn=torch.backends.cudnn.allow_tf32))
    else:   # the CPU run names the CPU; a CUDA run without a GPU names nothing
        info['device_name'] = info['cpu'] if device == 'cpu' else None
    return info


def use_device(device: str) -> None:
    """Make ``cuda:N`` the current CUDA device; ``cuda`` keeps the current one (torch's
    ``set_device`` refuses a device without an index), ``cpu`` changes nothing."""
    if device.startswith('cuda:'):
        import torch
        torch.cuda.set_device(int(device.split(':', 1)[1]))


def _nccl_version() -> Optional[str]:
    try:
        import torch
        return '.'.join(map(str, torch.cuda.nccl.version()))
    except Exception:
        return None


def _cpu_name() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ----------------------------------------------------------------------------- the outputs
def summarize(records: Sequence[dict]) -> dict:
    counts = {s: sum(r['status'] == s for r in records) for s in ('passed', 'failed',
                                                                    'skipped')}
    return dict(counts, total=len(records))


def write_outputs(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / JSON_NAME).write_text(json.dumps(result, indent=2, default=str))
    (out / COLUMN_NAME).write_text(gpu_column(result))


def gpu_column(result: dict) -> str:
    """The markdown fragment: the GPU column rows of bench/RESULTS.md, device in the header."""
    env = result.get('environment', {})
    name = env.get('device_name', '?')
    if result['status'] == 'no-cuda':
        return f'GPU column: not measured ({NO_CUDA}).\n'
    cpu = not str(result['device']).startswith('cuda')
    title = (f'`--device cpu` exercise on {name}: NOT GPU figures' if cpu else
             f"GPU column: {name}, torch {env.get('torch')}, CUDA {env.get('cuda_runtime')}")
    day = time.strftime('%Y-%m-%d', time.gmtime(result['started']))
    lines = [f"{title} (`{result['command']}`, {day}, {result['duration_s']:.0f} s)", '',
             f"| row | {'CPU (script exercise)' if cpu else 'GPU: ' + name} |", '|---|---|']
    for rec in result['checks']:
        for row in rec.get('column', []):
            lines.append(f"| `{row['row']}` | {_cell(row['text'])} |")
        if rec['status'] != 'passed' and not rec.get('column') and rec['reason'] != NOT_SELECTED:
            lines.append(f"| `{rec['name']}` | {rec['status']}: {_cell(rec['reason'][:200])} |")
    return '\n'.join(lines) + '\n'


def _cell(text: str) -> str:
    """``text`` safe in a markdown table cell (its pipes escaped, one line)."""
    return ' '.join(text.replace('|', '\\|').split())


def format_summary(result: dict) -> str:
    """The short table printed at the end, then what was skipped and why."""
    cut = result.get('cut_by_time_limit') or []
    lines = [f"gpu_check: {result['status']} on {result['device']} "
             f"({result.get('environment', {}).get('device_name', '?')}), "
             f"{result['duration_s']:.0f} s"
             + (f', INCOMPLETE: {len(cut)} checks cut by the time limit' if cut else '')
             + f"; files in {result['out']}"]
    width = max([len(r['name']) for r in result['checks']] + [5])
    for rec in result['checks']:
        reason = f"  {rec['reason'][:160]}" if rec['status'] == 'failed' else ''
        lines.append(f"  {rec['name']:<{width}}  {rec['status']:<7} {rec['seconds']:7.1f} s"
                     + reason)
    skipped = [r for r in result['checks'] if r['status'] == 'skipped']
    if skipped:
        lines.append('skipped:')
        lines += [f"  {r['name']}: {r['reason']}" for r in skipped]
    return '\n'.join(lines)


# ----------------------------------------------------------------------------- the command
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog='Exit codes: 0 passed, 1 a check failed (or the time limit stopped the run), '
               '2 bad arguments, 3 no CUDA device (nothing checked).')
    p.add_argument('--time-limit', type=float, default=DEFAULT_TIME_LIMIT, metavar='SECONDS',
                   help='wall-clock budget of the whole run (default %(default)s)')
    p.add_argument('--out', default=None,
                   help='write everything here (default: $OUT if set, else a new temp dir)')
    p.add_argument('--device', default='cuda', help='cuda (default), cuda:N or cpu')
    p.add_argument('--only', nargs='+', default=None, metavar='NAME',
                   help='run only these checks (--list shows them)')
    p.add_argument('--small', action='store_true',
                   help='tiny sizes everywhere (to exercise the script on a CPU)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch threads (default: the CPU count)')
    p.add_argument('--list', action='store_true', help='list the checks and exit')
    args = p.parse_args(argv)
    if args.time_limit <= 0:
        p.error('--time-limit must be > 0')
    if not (args.device == 'cpu' or args.device == 'cuda' or args.device.startswith('cuda:')):
        p.error(f'--device must be cuda, cuda:N or cpu, not {args.device!r}')
    if args.only:
        unknown = [n for n in args.only if n not in check_names()]
        if unknown:
            p.error(f'--only: unknown checks {unknown}; choose from {check_names()}')
    return args


def output_dir(arg: Optional[str]) -> Path:
    if arg:
        return Path(arg).resolve()
    if os.environ.get('OUT'):
        return Path(os.environ['OUT']).resolve()
    return Path(tempfile.mkdtemp(prefix='wsss_gpu_check_')).resolve()


def select(checks: Sequence[Check], only: Optional[Sequence[str]]):
    """(checks to run, records of those left out by --only)."""
    if not only:
        return list(checks), []
    run = [c for c in checks if c.name in only]
    left = [check_record(c.name, c.what, 'skipped', NOT_SELECTED)
            for c in checks if c.name not in only]
    return run, left


def order_records(checks: Sequence[Check], records: Sequence[dict]) -> List[dict]:
    by_name = {r['name']: r for r in records}
    return [by_name[c.name] for c in checks if c.name in by_name]


def main(argv: Optional[Sequence[str]] = None) -> int:
    sys.dont_write_bytecode = True  # no bench/__pycache__: the script writes only under --out
    started_wall, t0 = time.time(), time.monotonic()
    args = parse_args(argv)
    if args.list:
        for check in all_checks():
            print(f'{check.name:<16} {check.what}')
        return EXIT_PASSED
    out = output_dir(args.out)
    env = isolate(out)
    import torch
    checks = all_checks()
    result = dict(status='running', device=args.device, out=str(out),
                  command=' '.join(['scripts/gpu_check.sh',
                                    *(sys.argv[1:] if argv is None else argv)]),
                  started=started_wall, time_limit_s=args.time_limit, small=args.small,
                  isolated_env=env, environment=environment(args.device), checks=[])
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        why = (f'{NO_CUDA}: torch {torch.__version__} (CUDA runtime {torch.version.cuda}) '
               f'sees no GPU (CUDA_VISIBLE_DEVICES={os.environ.get("CUDA_VISIBLE_DEVICES")!r})')
        result.update(status='no-cuda', exit_code=EXIT_NO_CUDA, reason=why,
                      checks=[check_record(c.name, c.what, 'skipped', NO_CUDA) for c in checks])
        result['summary'] = summarize(result['checks'])
        result['duration_s'] = time.monotonic() - t0
        write_outputs(result, out)
        print(f'gpu_check: {why}. All {len(checks)} checks skipped; no CUDA path was run and '
              f'nothing was measured. This is not a failure of the checks: run it on a machine '
              f'with a GPU (or --device cpu to exercise the script). Exit code '
              f'{EXIT_NO_CUDA}; JSON: {out / JSON_NAME}')
        return EXIT_NO_CUDA
    use_device(args.device)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    ctx = CheckContext(device=args.device, out=out, small=args.small, threads=threads,
                       started=t0, time_limit=args.time_limit)
    todo, left_out = select(checks, args.only)
    progress: dict = dict(records=list(left_out), running=None)
    finish = _finisher(result, checks, progress, out, t0)
    watchdog = threading.Timer(max(0.0, args.time_limit - (time.monotonic() - t0)),
                               _stop_at_time_limit, args=(finish, progress))
    watchdog.daemon = True
    watchdog.start()
    try:
        run_checks(todo, ctx, progress=progress)
    finally:
        watchdog.cancel()
    return finish(stopped=False)


def _finisher(result: dict, checks, progress: dict, out: Path, t0: float):
    lock = threading.Lock()

    def finish(stopped: bool) -> int:
        with lock:
            if result['status'] not in ('running',):
                return result['exit_code']
            records = list(progress['records'])
            if stopped and progress.get('running'):
                check, since = progress['running']
                records.append(check_record(
                    check.name, check.what, 'failed',
                    f'still running when the time limit of {result["time_limit_s"]:.0f} s '
                    'ran out (stopped by the watchdog)', time.monotonic() - since))
            done = {r['name'] for r in records}
            records += [check_record(c.name, c.what, 'skipped',
                                     'the watchdog stopped the run at the time limit first')
                        for c in checks if c.name not in done]
            result['checks'] = order_records(checks, records)
            result['summary'] = summarize(result['checks'])
            failed = stopped or result['summary']['failed'] > 0
            result['status'] = 'stopped' if stopped else ('failed' if failed else 'passed')
            cut = [r['name'] for r in result['checks'] if r['status'] == 'skipped'
                   and r['reason'].startswith(('time limit', 'the watchdog'))]
            result['complete'] = not cut and not stopped
            result['cut_by_time_limit'] = cut
            result['exit_code'] = EXIT_FAILED if failed else EXIT_PASSED
            result['duration_s'] = time.monotonic() - t0
            if not str(result['device']).startswith('cuda'):
                result['note'] = ('--device cpu: CPU compared with CPU, amp off; this only '
                                  'exercises the script, its figures are not GPU figures')
            write_outputs(result, out)
            print(format_summary(result), flush=True)
            return result['exit_code']
    return finish


def _stop_at_time_limit(finish, progress: dict) -> None:
    """The watchdog: write what there is, stop worker processes, leave with code 1."""
    code = finish(stopped=True)
    import multiprocessing
    for child in multiprocessing.active_children():
        child.terminate()
    sys.stdout.flush()
    os._exit(code)


if __name__ == '__main__':
    sys.exit(main())
