"""``wsss-run``: discover the plugins, resolve the config, run the pipeline it describes.

    wsss-run                                  # the quickstart on SyntheticShapes
    wsss-run --list-plugins
    wsss-run --list-configs [PLUGIN]          # every shipped config with its first comment line
    wsss-run --check-plugin oaa               # the plugin conformance suite on one plugin
    wsss-run oaa::voc12_vgg16.py --work-dir runs/oaa --cfg-options data.data_root=/data/VOC2012
    wsss-run CONFIG --stages make_cams,refine  # redo two stages on the artifacts already there
    wsss-run CONFIG --verify                   # check every finished stage's files, change nothing
    wsss-run configs/zoo.py --reuse-from work_dirs/oaa_synthetic_pretrained   # copy its stages
    torchrun --nproc_per_node=2 -m wsss_core.cli CONFIG --launcher pytorch

The console shows per stage a start line naming the stage's log file (<work dir>/<stage>/
stage.log), a progress bar and a result line; the rest is in the log files (-v shows it all).
Exit status: 0 done; 1 a stage failed; 2 the config is wrong (cannot be resolved, or a
component cannot be built from it: the message names the config key, or its stages or
--stages are refused before any stage runs) or a plugin is missing;
130 interrupted (Ctrl-C: one line says which stage and the command that continues). A
failure prints one paragraph; its traceback is in <work dir>/wsss-run.log (and on the
console with --debug).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

QUICKSTART = 'core::quickstart.py'
ALL_PLUGINS = '*'


def _set_runtime_env() -> None:
    """Defaults that must be in place before torch/OpenMP start (never overriding the user)."""
    os.environ.setdefault('HF_HUB_OFFLINE', '1')         # nothing is downloaded at run time
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # no spinning threads on shared cores


def build_parser() -> argparse.ArgumentParser:
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(prog='wsss-run', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', nargs='?', default=None,
                   help="config file, 'PLUGIN::path.py', or 'quickstart' (default)")
    p.add_argument('--work-dir', help='where stages write (default: the config\'s work_dir or '
                   'work_dirs/<config name>)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                   help='override config keys, e.g. data.generator.num_train=500')
    p.add_argument('--stages', help='comma-separated stage names to (re)run; the others must '
                   'have finished already')
    p.add_argument('--resume', action='store_true',
                   help='let an interrupted training stage continue from its last checkpoint')
    p.add_argument('--reuse-from', metavar='WORK_DIR', nargs='+', action='extend', default=[],
                   help='other work dirs (after CONFIG): a stage that finished there with the '
                   'same config hash (same name, options, data and inputs) is copied '
                   '(hard-linked where possible, checked) instead of run')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    p.add_argument('--device', help="'cpu' or 'cuda' (default: cuda when available)")
    p.add_argument('--list-plugins', action='store_true', help='list plugins and exit')
    p.add_argument('--verify', action='store_true', help="only check the files of every "
                   "finished stage against its manifest's checksums (exit 1 if any is bad)")
    p.add_argument('--check-plugin', metavar='NAME', action='append',
                   help='run the conformance suite on the installed plugin NAME (repeatable) '
                        'and exit: 0 when every check passes, 1 otherwise')
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    p.add_argument('-v', '--verbose', action='store_true',
                   help="everything on the console: mmengine's environment dump and hook table, "
                        'per-iteration lines, every log line of the stages')
    p.add_argument('--debug', action='store_true',
                   help='print the traceback of a failure (it is always in '
                        '<work dir>/wsss-run.log)')
    p.add_argument('--list-configs', nargs='?', const=ALL_PLUGINS, default=None,
                   metavar='PLUGIN', help='list the configs every plugin (or PLUGIN) ships, '
                   'with their first comment line, and exit')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return p


def list_plugins_main() -> int:
    from .plugin_loader import format_plugin_table, list_plugins
    print(format_plugin_table(list_plugins()))
    return 0


def list_configs_main(plugin: str) -> int:
    """``--list-configs [PLUGIN]``: ``NAME::config.py  <first comment line>`` per shipped
    config (no torch import)."""
    from .config import ConfigError, format_config_table, shipped_configs
    try:
        rows = shipped_configs(None if plugin == ALL_PLUGINS else plugin)
    except ConfigError as exc:
        print(f'wsss-run: {exc}', file=sys.stderr)
        return 2
    print(format_config_table(rows))
    return 0


def check_plugins_main(names: List[str]) -> int:
    """``--check-plugin``: the conformance report of each plugin; exit 1 on any failure."""
    from .testing.conformance import PluginNotCheckable, check_plugin
    status = 0
    for name in names:
        try:
            report = check_plugin(name)
        except PluginNotCheckable as exc:
            print(f'wsss-run: {exc}', file=sys.stderr)
            return 2
        print(report.format(verbose=True))
        status = status or (0 if report.ok else 1)
    return status


def _work_dir(args, cfg, spec: str) -> Path:
    if args.work_dir:
        return Path(args.work_dir)
    if cfg.get('work_dir'):
        return Path(cfg.work_dir)
    return Path('work_dirs') / Path(spec.split('::')[-1]).stem


def _setup_logging(args) -> None:
    from . import console
    console.setup_console(verbose_=args.verbose, progress=not args.no_progress)


def _report_failure(exc: BaseException, message: str, args) -> None:
    """``message`` on stderr (one paragraph); the traceback into the run's log file, and on
    stderr too with ``--debug``."""
    from . import console
    logging.getLogger('wsss').error(message, exc_info=exc, extra=console.FILE_ONLY)
    if args.debug:
        import traceback
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f'wsss-run: {message}', file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    _set_runtime_env()
    args = build_parser().parse_args(argv)
    if args.list_plugins:
        return list_plugins_main()
    if args.check_plugin:
        return check_plugins_main(args.check_plugin)
    if args.list_configs:
        return list_configs_main(args.list_configs)
    missing = [d for d in args.reuse_from if not Path(d).is_dir()]
    if missing:
        hint = ('; it takes every word up to the next option: put CONFIG before it'
                if any(d.endswith('.py') or '::' in d for d in missing) else '')
        print(f'wsss-run: --reuse-from: no such work dir: {", ".join(missing)}{hint}',
              file=sys.stderr)
        return 2
    from .config import is_work_dir, not_a_work_dir
    not_work_dirs = [d for d in args.reuse_from if not is_work_dir(d)]
    if not_work_dirs:
        print('wsss-run: --reuse-from: ' + '; '.join(not_a_work_dir(d) for d in not_work_dirs),
              file=sys.stderr)
        return 2
    _setup_logging(args)
    from .config import ConfigError, dump_run_info, load_config
    from .plugin_loader import PluginSelectionError, load_plugins
    from .prepare.refs import UnknownItemError
    spec = QUICKSTART if args.config in (None, 'quickstart') else args.config
    try:
        cfg = load_config(spec, args.cfg_options)
        plugin_set = load_plugins(cfg.get('plugins'))
        if not args.verify:   # data and weights named 'item:NAME' are installed
            from .prepare.refs import check_config_items
            check_config_items(cfg.to_dict(), config_name=spec)
    except (ConfigError, PluginSelectionError, FileNotFoundError) as exc:
        print(f'wsss-run: {exc}', file=sys.stderr)
        return 2
    except UnknownItemError as exc:   # an 'item:NAME' that no wsss-prepare item has
        print(f'wsss-run: {exc}', file=sys.stderr)
        return 2
    if args.verify:
        return verify_main(cfg, _work_dir(args, cfg, spec))
    from . import compat
    compat.init_distributed(args.launcher)
    try:
        return _run_pipeline(args, cfg, spec, plugin_set, argv)
    finally:
        compat.shutdown_distributed()


def _run_pipeline(args, cfg, spec, plugin_set, argv) -> int:
    """Run the config's pipeline in its work dir; the exit status (see :func:`main`)."""
    from . import console
    from .config import dump_run_info
    from .config_errors import ConfigBuildError, ConfigValueError, add_base_config_hint
    from .pipeline.pipeline import Pipeline, work_dir_lock
    from .pipeline.stage import StageError
    from .prepare.refs import UnknownItemError
    from .pipeline.summary import format_summary, write_summary
    from .models.protocols import ModelContractError
    from .registry import UnknownComponentError
    work_dir = _work_dir(args, cfg, spec)
    only = [s.strip() for s in args.stages.split(',') if s.strip()] if args.stages else None
    pipeline = None
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        if is_main_process():
            console.attach_run_log(work_dir)
            console.record_crashes(work_dir)
            command = ' '.join(sys.argv[1:] if argv is None else argv)
            logging.getLogger('wsss').info(f'wsss-run {command} (cwd {os.getcwd()})',
                                           extra=console.FILE_ONLY)
        with work_dir_lock(work_dir):
            dump_run_info(cfg, work_dir, plugin_set.records)
            pipeline = Pipeline(cfg, work_dir, only=only, resume=args.resume,
                                launcher=args.launcher, device=args.device,
                                progress=not args.no_progress, reuse_from=args.reuse_from)
            results = pipeline.run()
    except ConfigBuildError as exc:
        add_base_config_hint(exc, cfg)
        stage = getattr(pipeline, 'current_stage', None)
        where = f"stage '{stage}' failed: " if stage else ''
        _report_failure(exc, f'{where}{exc}', args)
        return 2
    except ConfigValueError as exc:      # a value refused before any stage ran
        _report_failure(exc, str(exc), args)
        return 2
    except UnknownItemError as exc:      # an 'item:NAME' a built recipe names
        _report_failure(exc, str(exc), args)
        return 2
    except (UnknownComponentError, ModelContractError, ValueError, KeyError, OSError,
            RuntimeError) as exc:
        stage = getattr(pipeline, 'current_stage', None)
        where = f"stage '{stage}' failed: " if stage else ''
        _report_failure(exc, f'{where}{exc}', args)
        # the config's stages or --stages refused before any stage ran: a usage error
        return 2 if pipeline is None and isinstance(exc, StageError) else 1
    except KeyboardInterrupt:
        if pipeline is not None and is_main_process():
            print(f'\nwsss-run: {pipeline.interruption_advice()}', file=sys.stderr)
        return 130
    print(format_summary(results, work_dir))
    if getattr(pipeline, 'shard', None) is not None and pipeline.shard.independent:
        # a WSSS_SHARD process did its share of one stage: the run's summary and report are
        # written by a run without WSSS_SHARD (a partial one would replace them)
        return 0
    if is_main_process():
        write_summary(work_dir, results)
    _write_report(work_dir)
    return 0


def verify_main(cfg, work_dir) -> int:
    """``--verify``: an OK / BAD line per stage of ``cfg`` (then each bad file); 1 if any."""
    from .pipeline.checksums import verify_work_dir
    lines, ok = verify_work_dir(work_dir, [s['name'] for s in cfg.get('stages') or []
                                           if 'name' in s])
    print('\n'.join([f'verify {work_dir}:'] + lines))
    return 0 if ok else 1


def _write_report(work_dir) -> None:
    """report.html for the run (main process only); a failure here never fails the run."""
    if not is_main_process():
        return
    try:
        from .visualization.report import build_report
        print(f'report: {build_report(work_dir)}')
    except Exception as exc:  # noqa: BLE001 - the run's results are already written
        logging.getLogger('wsss').warning(f'report not written: {type(exc).__name__}: {exc}')


def is_main_process() -> bool:
    from .pipeline.pipeline import is_main_process as main
    return main()


if __name__ == '__main__':  # python -m wsss_core.cli (torchrun)
    sys.exit(main())
