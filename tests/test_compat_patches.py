"""Each mmengine patch in wsss_core.compat does what it says on the installed mmengine, and its
version gate refuses an mmengine version it was not checked on."""
from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper

from wsss_core import compat
from wsss_core.compat import config_path, mmlogger, optim_wrapper, train_loop
from wsss_core.compat.versions import UncheckedMMEngineVersion, require_checked

UNCHECKED = '0.11.0'


# ----------------------------------------------------------------------------- the package
def test_importing_the_package_imports_no_torch_and_exports_load_on_use():
    code = textwrap.dedent('''
        import sys
        from wsss_core import compat
        from wsss_core.compat import config_path, mmlogger, versions
        print('torch' in sys.modules)
        compat.allow_mmengine_checkpoints
        print('torch' in sys.modules)
        ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['False', 'True']


def test_every_exported_name_resolves():
    for name in compat.__all__:
        assert getattr(compat, name) is not None, name
    with pytest.raises(AttributeError, match='no_such_name'):
        compat.no_such_name


@pytest.mark.parametrize('versions', [config_path.CONFIG_PATH_VERSIONS,
                                      mmlogger.MMLOGGER_ROUTING_VERSIONS,
                                      optim_wrapper.UPDATE_GATE_VERSIONS,
                                      train_loop.FAST_FORWARD_VERSIONS])
def test_installed_mmengine_is_a_checked_version_of_every_patch(versions):
    """Fails when mmengine moves on: run this file on the new version, then extend the gates."""
    assert compat.mmengine_version_tuple() in versions


def test_require_checked_names_the_patch_the_versions_and_what_to_do():
    require_checked('p', ((0, 10),), 'x', 'M.V', '0.10.7')          # a checked version: no error
    with pytest.raises(UncheckedMMEngineVersion) as err:
        require_checked('the p patch', ((0, 9), (0, 10)), 'keeping y right', 'M.V', '1.2.0')
    msg = str(err.value)
    assert 'the p patch was checked on mmengine 0.9, 0.10' in msg
    assert 'the installed mmengine is 1.2' in msg and 'keeping y right' in msg and 'M.V' in msg


# ----------------------------------------------------------------------------- config path
@pytest.fixture
def plain_get_cfg_path(monkeypatch):
    """mmengine's own ``Config._get_cfg_path`` for the test (the shim is back afterwards)."""
    current = Config.__dict__['_get_cfg_path'].__func__
    original = getattr(current, '__wrapped__', current)
    monkeypatch.setattr(Config, '_get_cfg_path', staticmethod(original))
    return original


def test_config_path_shim_resolves_what_the_resolver_owns(tmp_path, plain_get_cfg_path):
    (tmp_path / 'fragment.py').write_text('a = 1\nb = 2\n')
    (tmp_path / 'local.py').write_text('c = 3\n')
    (tmp_path / 'exp.py').write_text("_base_ = ['demo::fragment.py', './local.py']\nb = 5\n")
    asked = []

    def resolve(cfg_path):
        asked.append(cfg_path)
        return str(tmp_path / 'fragment.py') if cfg_path == 'demo::fragment.py' else None

    assert config_path.install_config_path_shim(resolve) is True
    assert config_path.install_config_path_shim(resolve) is False      # once per process
    cfg = Config.fromfile(str(tmp_path / 'exp.py'))
    assert (cfg.a, cfg.b, cfg.c) == (1, 5, 3)                    # the relative base fell through
    assert asked == ['demo::fragment.py', './local.py']
    assert Config.__dict__['_get_cfg_path'].__func__.__wrapped__ is plain_get_cfg_path


def test_config_path_shim_refuses_an_unchecked_mmengine(plain_get_cfg_path):
    with pytest.raises(UncheckedMMEngineVersion, match='CONFIG_PATH_VERSIONS'):
        config_path.install_config_path_shim(lambda p: None, version=UNCHECKED)
    assert Config.__dict__['_get_cfg_path'].__func__ is plain_get_cfg_path
    assert not config_path.is_installed()


# ----------------------------------------------------------------------------- MMLogger
def test_mmlogger_routing_adopts_each_new_logger(monkeypatch):
    from wsss_core.console import StageLogRelay
    plain = getattr(MMLogger.__init__, '__wrapped__', MMLogger.__init__)
    monkeypatch.setattr(MMLogger, '__init__', plain)
    assert compat.route_mmengine_logs() is True
    logger = MMLogger.get_instance('compat-patch-test-routed', log_level='INFO')
    assert sum(isinstance(h, StageLogRelay) for h in logger.handlers) == 1


def test_mmlogger_routing_is_skipped_on_an_unchecked_mmengine(monkeypatch, caplog):
    plain = getattr(MMLogger.__init__, '__wrapped__', MMLogger.__init__)
    monkeypatch.setattr(MMLogger, '__init__', plain)
    with caplog.at_level(logging.DEBUG, logger='wsss_core'):
        assert compat.route_mmengine_logs(version=UNCHECKED) is False
    assert MMLogger.__init__ is plain
    assert 'route_mmengine_logs' in caplog.text and 'mmengine 0.11' in caplog.text


# ----------------------------------------------------------------------------- update gate
def _sgd_on_ones(accumulative_counts=1):
    """w (1x2, zeros) trained by SGD(lr=1) on loss = w . (1, 1): each applied update moves
    w by -lr * grad = -(1, 1) / accumulative_counts per batch (mmengine scales the loss)."""
    net = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    wrapper = OptimWrapper(torch.optim.SGD(net.parameters(), lr=1.0),
                           accumulative_counts=accumulative_counts)
    wrapper.initialize_count_status(net, 0, 4)
    return net, wrapper


def test_update_gate_holds_back_a_refused_loss_and_passes_the_others():
    net, wrapper = _sgd_on_ones()
    held = []
    owner = object()
    gate = lambda update: optim_wrapper.gate_update_params(   # noqa: E731
        update, allow=lambda loss: bool(torch.isfinite(loss)), on_held_back=lambda: held.append(1))
    assert optim_wrapper.install_update_gate(wrapper, owner, gate) is True
    assert optim_wrapper.install_update_gate(wrapper, owner, gate) is False   # wraps once
    assert wrapper.update_params(net(torch.ones(1, 2)).sum() * float('nan')) is None
    assert held == [1] and net.weight.grad is None and not net.weight.any()
    wrapper.update_params(net(torch.ones(1, 2)).sum())
    assert torch.equal(net.weight.detach(), torch.tensor([[-1.0, -1.0]]))


def test_update_gate_counts_a_held_back_batch_in_the_accumulation_window():
    """Window of 2: batch 1 held back, batch 2 applied -> one step after batch 2 with batch 2's
    gradient only, (1, 1) / 2; batches 3 and 4 both held back -> no step at all."""
    net, wrapper = _sgd_on_ones(accumulative_counts=2)
    steps = []
    real_step = wrapper.step
    wrapper.step = lambda **kw: (steps.append(wrapper._inner_count), real_step(**kw))
    wrapper.update_params = optim_wrapper.gate_update_params(
        wrapper.update_params, allow=lambda loss: bool(torch.isfinite(loss)),
        on_held_back=lambda: None)
    for batch, bad in enumerate((True, False, True, True), start=1):
        loss = net(torch.ones(1, 2)).sum()
        wrapper.update_params(loss * float('nan') if bad else loss)
    assert steps == [2]
    assert torch.equal(net.weight.detach(), torch.tensor([[-0.5, -0.5]]))
    assert net.weight.grad is None or not net.weight.grad.any()


def test_update_gate_refuses_an_unchecked_mmengine():
    _, wrapper = _sgd_on_ones()
    with pytest.raises(UncheckedMMEngineVersion, match='UPDATE_GATE_VERSIONS'):
        optim_wrapper.gate_update_params(wrapper.update_params, lambda loss: True,
                                         lambda: None, version=UNCHECKED)


# ----------------------------------------------------------------------------- fast-forward
class _Recorded(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n, self.fetched = n, []

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.fetched.append(i)
        return i


def test_fast_forward_hook_runs_right_after_mmengines_fast_forward():
    """mmengine's IterBasedTrainLoop resumed at iteration 2 of 5 draws batches 0 and 1 and
    drops them; the hook runs after those two draws and before batch 2 is fetched."""
    from mmengine.runner import IterBasedTrainLoop
    data = _Recorded(5)
    trained, calls = [], []
    model = SimpleNamespace(train=lambda: None,
                            train_step=lambda batch, optim_wrapper: trained.append(int(batch)))
    runner = SimpleNamespace(call_hook=lambda *a, **k: None, visualizer=SimpleNamespace(),
                             model=model, optim_wrapper=None, val_loop=None)
    loop = IterBasedTrainLoop(runner, torch.utils.data.DataLoader(data, batch_size=1),
                              max_iters=5)
    loop._iter = 2                                       # what a resume at iteration 2 sets
    compat.restore_before_batch(loop, 2, lambda: calls.append(list(data.fetched)))
    loop.run()
    assert calls == [[0, 1]]
    assert trained == [2, 3, 4]
    assert loop.dataloader_iterator._dataloader is not None   # attributes pass through


def test_fast_forward_hook_refuses_an_unchecked_mmengine():
    loop = SimpleNamespace(dataloader_iterator=iter(range(3)))
    before = loop.dataloader_iterator
    with pytest.raises(UncheckedMMEngineVersion, match='FAST_FORWARD_VERSIONS'):
        compat.restore_before_batch(loop, 1, lambda: None, version=UNCHECKED)
    assert loop.dataloader_iterator is before
