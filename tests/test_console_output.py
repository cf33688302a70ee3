"""The console shows a start line, a bar and a result line per stage; the logs keep the rest
(issue 20.2)."""
from __future__ import annotations

import contextlib
import io
import logging
import re
import uuid
from types import SimpleNamespace

import pytest
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer, MMLogger

from wsss_core import cli, compat, console, registry
from wsss_core.components import register_core_components
from wsss_core.datasets.synthetic_shapes import SyntheticShapesConfig
from wsss_core.datasets.synthetic_shapes_cache import generate_into
from wsss_core.pipeline.checksums import is_recorded
from wsss_core.pipeline.progress_hook import TrainProgressBar
from wsss_core.pipeline.stage import StageContext
from wsss_core.registry import STAGES, build
from wsss_core.testing import TINY_GENERATOR, tiny_classify_stage, tiny_pipeline_cfg

register_core_components()

MMENGINE_ONLY = ('System environment', 'Hooks will be executed', 'Epoch(train)')


@pytest.fixture(autouse=True)
def _console_defaults():
    yield
    console.reset()


@pytest.fixture
def wsss_run():
    """``wsss-run ARGS`` in this process: (exit status, stdout + stderr lines).  Captured in
    buffers that stay open: the loggers a run makes keep their streams after it.  The configs
    load the core only (``plugins = ['core']``): the plugins' registrations would outlive the
    test."""

    def run(*args):
        out, err = io.StringIO(), io.StringIO()
        provider = registry._provider_lookup      # plugin loading installs its own
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = cli.main(list(args))
        finally:
            console.reset()
            registry.set_provider_lookup(provider)
        return status, (out.getvalue() + err.getvalue()).splitlines()
    return run


def _write_config(path, cfg: dict) -> str:
    path.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()) + '\n')
    return str(path)


# --- the whole run -------------------------------------------------------------------------
def test_tiny_run_console_has_a_start_and_a_result_line_per_stage(tmp_path, wsss_run):
    cfg = tiny_pipeline_cfg(dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR)))
    config = _write_config(tmp_path / 'tiny.py', dict(cfg, plugins=['core']))
    work = tmp_path / 'work'
    status, lines = wsss_run(config, '--work-dir', str(work), '--no-progress')
    assert status == 0, '\n'.join(lines[-40:])
    names = [s['name'] for s in cfg['stages']]
    for name, stage in zip(names, cfg['stages']):
        log = work / name / 'stage.log'
        start = [ln for ln in lines if f'[{name}] {stage["type"]} starts' in ln]
        done = [ln for ln in lines if f'[{name}] done in' in ln]
        assert len(start) == 1 and len(done) == 1, (name, lines)
        assert start[0].endswith(f'(log: {log})')
        text = log.read_text()
        assert start[0].split(' INFO ')[1] in text and done[0].split(' INFO ')[1] in text
    assert re.search(r'\[eval_labels\] done in [\d.]+ s: mIoU \[\w+\] [\d.]+, ', '\n'.join(lines))
    console_text = '\n'.join(lines)
    for dump in MMENGINE_ONLY:
        assert dump not in console_text
        assert dump in (work / 'classify' / 'stage.log').read_text()
    assert len(lines) < 40
    run_log = (work / 'wsss-run.log').read_text()
    assert all(f'[{n}] done in' in run_log for n in names)
    # the logs are not artifacts: the finished stages still verify
    status, lines = wsss_run(config, '--work-dir', str(work), '--verify')
    assert status == 0, lines


class _CtrlCAfterEpoch1(Hook):
    """Ctrl-C (KeyboardInterrupt) after the first epoch's checkpoint, or in the CAM stage."""
    priority = 'LOWEST'   # after the checkpoint hook saved the epoch

    def after_train_epoch(self, runner):
        if runner.epoch == 0:
            raise KeyboardInterrupt


def test_ctrl_c_names_the_stage_and_the_command_that_continues_it(tmp_path, wsss_run,
                                                                   monkeypatch):
    from wsss_core.pipeline.make_cams import MakeCAMs
    name = f'_CtrlC{uuid.uuid4().hex[:8]}'
    registry.HOOKS.register_module(name=name, module=_CtrlCAfterEpoch1)
    cfg = tiny_pipeline_cfg(dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR)),
                            epochs=2)
    cfg['stages'][0].update(custom_hooks=[dict(type=name)], val_split=None)
    config = _write_config(tmp_path / 'tiny.py', dict(cfg, plugins=['core']))
    work = tmp_path / 'work'
    status, lines = wsss_run(config, '--work-dir', str(work), '--no-progress')
    assert status == 130, '\n'.join(lines[-20:])
    said = [ln for ln in lines if ln.startswith('wsss-run: interrupted')]
    assert len(said) == 1 and "stage 'classify'" in said[0], lines[-10:]
    assert 'epoch_1.pth' in said[0] and 'again with --resume' in said[0]
    assert (work / 'classify' / 'epoch_1.pth').is_file()   # nothing set aside yet
    assert not any('Traceback' in ln for ln in lines)

    def interrupted_cams(self, ctx):
        raise KeyboardInterrupt
    monkeypatch.setattr(MakeCAMs, 'run', interrupted_cams)   # an offline stage: no --resume
    status, lines = wsss_run(config, '--work-dir', str(work), '--no-progress', '--resume')
    said = [ln for ln in lines if ln.startswith('wsss-run: interrupted')]
    assert status == 130 and len(said) == 1 and "stage 'cams'" in said[0], lines[-10:]
    assert '--resume' not in said[0] and "continues with stage 'cams'" in said[0]
    assert (work / 'classify' / 'manifest.json').is_file()   # the resumed training finished


def test_stage_logs_are_not_recorded_in_manifests():
    for name in ('stage.log', 'stage.rank1.log', 'stage.shard-0-of-2.log'):
        assert not is_recorded(name)
    assert is_recorded('labels/stage.log') and is_recorded('stage.txt')


# --- console rules -------------------------------------------------------------------------
def _record(level=logging.INFO, **extra):
    record = logging.LogRecord('wsss', level, __file__, 1, 'message', None, None)
    record.__dict__.update(extra)
    return record


def test_console_filter_rule(tmp_path):
    shown = console.ConsoleFilter().filter
    assert shown(_record()) and not shown(_record(**console.FILE_ONLY))
    with console.stage_log(tmp_path / 'stage.log'):
        assert not shown(_record())
        assert shown(_record(**console.CONSOLE)) and shown(_record(logging.WARNING))
        assert not shown(_record(logging.ERROR, **console.FILE_ONLY))
        console.configure(verbose=True)
        assert shown(_record())
    assert shown(_record())


def _mmengine_logger():
    logger = MMLogger.get_instance(f'console-test-{uuid.uuid4().hex}', log_level='INFO')
    stream = io.StringIO()
    for h in logger.handlers:
        if type(h) is logging.StreamHandler:
            h.setStream(stream)
    return logger, stream


@pytest.mark.parametrize('verbose', [False, True])
def test_mmengine_lines_go_to_the_stage_log(tmp_path, verbose):
    console.configure(verbose=verbose)
    assert compat.route_mmengine_logs()
    logger, stream = _mmengine_logger()   # made after routing, as a Runner makes its own
    with console.stage_log(tmp_path / 'stage.log'):
        logger.info('environment dump')
        logger.error('a real problem')
        for _ in range(3):
            logger.warning('a deprecation')
    logger.info('between stages')
    shown, kept = stream.getvalue(), (tmp_path / 'stage.log').read_text()
    assert ('environment dump' in shown) == verbose
    assert 'a real problem' in shown and 'between stages' in shown
    assert 'environment dump' in kept and 'a real problem' in kept
    assert 'between stages' not in kept
    assert kept.count('a deprecation') == 1      # mmengine's filter of repeated warnings


def test_installed_mmengine_is_a_checked_version():
    """Fails when mmengine moves on: check compat.route_mmengine_logs on the new version."""
    assert compat.mmengine_version_tuple() in compat.MMLOGGER_ROUTING_VERSIONS


def test_routing_is_skipped_on_an_unchecked_mmengine(monkeypatch):
    assert compat.mmengine_version_tuple('0.10.7') == (0, 10)
    plain = getattr(MMLogger.__init__, '__wrapped__', MMLogger.__init__)
    monkeypatch.setattr(MMLogger, '__init__', plain)
    assert compat.route_mmengine_logs(version='0.11.0') is False
    assert MMLogger.__init__ is plain
    assert compat.route_mmengine_logs(version='0.10.7') is True
    assert MMLogger.__init__._wsss_routed


# --- progress bars -------------------------------------------------------------------------
def test_synthetic_generation_bar_honours_no_progress(tmp_path, capsys):
    cfg = SyntheticShapesConfig(image_size=32, num_classes=3, num_train=2, num_val=1)
    console.configure(progress=False)
    generate_into(tmp_path / 'a', cfg, workers=0, progress=True)
    assert 'SyntheticShapes' not in capsys.readouterr().err
    console.configure(progress=True)
    generate_into(tmp_path / 'b', cfg, workers=0, progress=True)
    assert '3/3' in capsys.readouterr().err


def test_training_bar_shows_iterations_epoch_and_mean_loss(capsys):
    loss = HistoryBuffer()
    for value in (1.0, 3.0):
        loss.update(value)
    runner = SimpleNamespace(train_loop=SimpleNamespace(max_iters=2, max_epochs=1), iter=0,
                             epoch=0, message_hub=SimpleNamespace(log_scalars={'train/loss': loss}))
    hook = TrainProgressBar(desc='[classify] train')
    hook.before_train(runner)
    for i in range(2):
        hook.after_train_iter(runner, i)
    hook.after_train(runner)
    final = capsys.readouterr().err.replace('\r', '\n').strip().splitlines()[-1]
    assert final.startswith('[classify] train') and '2/2' in final
    assert 'epoch 1/1, loss 2.0000' in final       # (1 + 3) / 2


def test_iteration_based_training_shows_no_epoch(capsys):
    from mmengine.runner.loops import IterBasedTrainLoop
    loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)   # its counters only
    loop._max_iters, loop._max_epochs = 3, 1
    runner = SimpleNamespace(train_loop=loop, iter=1, epoch=0,       # resumed after 1 of 3
                             message_hub=SimpleNamespace(log_scalars={}))
    hook = TrainProgressBar(desc='[deeplab] train')
    hook.before_train(runner)
    hook.after_train_iter(runner, 0)
    hook.after_train(runner)
    final = capsys.readouterr().err.replace('\r', '\n').strip().splitlines()[-1]
    assert '2/3' in final and 'epoch' not in final


@pytest.mark.parametrize('progress,verbose,expected', [(True, False, True), (False, False, False),
                                                       (True, True, False)])
def test_training_stages_add_the_bar_unless_no_progress_or_verbose(tmp_path, progress, verbose,
                                                                   expected):
    console.configure(verbose=verbose)
    stage = build(tiny_classify_stage(), STAGES)
    ctx = StageContext(cfg=None, work_dir=tmp_path, stage_dir=tmp_path / 'classify',
                       progress=progress)
    hooks = stage.protected_runner_kwargs(ctx, {})['custom_hooks']
    assert (dict(type='TrainProgressBar', desc='[classify] train') in hooks) == expected


def test_the_console_handler_writes_to_the_current_stderr(monkeypatch):
    """A handler made while stderr was one stream writes to the stream stderr is now (a
    closed earlier stream, as pytest leaves after a test, is never written to)."""
    import io
    import logging
    import sys

    from wsss_core.console import CurrentStderrHandler
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, 'stderr', first)
    handler = CurrentStderrHandler()
    first.close()
    monkeypatch.setattr(sys, 'stderr', second)
    handler.emit(logging.LogRecord('wsss', logging.INFO, __file__, 1, 'hello', None, None))
    assert second.getvalue() == 'hello\n'
