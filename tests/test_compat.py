"""The mmengine 0.10.7 work-arounds in wsss_core.compat, each shown to be needed and to work."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pickle
import pytest
import torch

from wsss_core import compat


def _mmengine_like_checkpoint(path):
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer()
    buf.update(0.5)
    torch.save({'state_dict': {'w': torch.ones(2)}, 'message_hub': {'log_scalars': {'loss': buf}},
                'meta': {'seed': np.int64(3), 'lr': np.float64(0.1)}}, path)


def test_weights_only_load_of_mmengine_checkpoint_needs_and_gets_the_allow_list(tmp_path):
    path = tmp_path / 'ckpt.pth'
    _mmengine_like_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    with compat.allow_mmengine_checkpoints():
        state = torch.load(path, weights_only=True)
    assert state['message_hub']['log_scalars']['loss'].current() == 0.5
    assert int(state['meta']['seed']) == 3
    with pytest.raises(pickle.UnpicklingError):  # the allow-list does not leak out of the block
        torch.load(path, weights_only=True)


def test_allow_list_still_refuses_arbitrary_callables(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ('echo pwned',))
    path = tmp_path / 'evil.pth'
    torch.save({'x': Evil()}, path)
    with compat.allow_mmengine_checkpoints(), pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


DIST_SCRIPT = textwrap.dedent('''
    import torch, torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    from wsss_core import compat
    assert not torch.cuda.is_available()
    assert compat.init_distributed('pytorch') is True
    assert dist.get_backend() == 'gloo', dist.get_backend()
    net = torch.nn.Linear(3, 1)
    try:
        MMDistributedDataParallel(module=net, device_ids=[0])   # what mmengine does
        raise SystemExit('plain wrapper unexpectedly accepted a CPU module with device_ids')
    except (ValueError, RuntimeError, AssertionError):
        pass
    ddp = compat.DeviceAwareDDP(module=net, device_ids=[0])
    ddp(torch.ones(4, 3)).sum().backward()
    assert net.weight.grad is not None
    dist.destroy_process_group()
    print('DIST-OK')
''')


def test_cpu_distributed_init_and_wrapper(tmp_path):
    env = dict(os.environ, RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(_free_port()), CUDA_VISIBLE_DEVICES='')
    out = subprocess.run([sys.executable, '-c', DIST_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'DIST-OK' in out.stdout


def test_launcher_without_torchrun_variables_says_how_to_start(monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match='torchrun'):
        compat.init_distributed('pytorch')
    assert compat.init_distributed('none') is False


def test_shutdown_distributed_destroys_the_group_this_process_made(monkeypatch):
    """wsss-run ends by destroying its process group (a live gloo group at interpreter exit
    can abort the process); without one it does nothing."""
    import socket

    import torch.distributed as dist

    from wsss_core import compat
    compat.shutdown_distributed()                          # no group: nothing to do
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    for key, value in dict(RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(port)).items():
        monkeypatch.setenv(key, value)
    assert compat.init_distributed('pytorch') and dist.is_initialized()
    compat.shutdown_distributed()
    assert not dist.is_initialized()
