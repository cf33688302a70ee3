"""A worker process that dies (SIGKILL, as from the out-of-memory killer) must not hang
StreamingMap / map_images / imap_images (wsss_core.refiners.parallel): the caller gets an
ItemError naming the item the dead worker was running, and no worker process is left.

Each call runs in a thread with a deadline, so that a regression (a pool that waits forever
for the lost item) fails the test instead of hanging the run."""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from types import SimpleNamespace

import pytest

from wsss_core.refiners.parallel import (ItemError, RefineChainJob, StreamingMap, imap_images,
                                         map_images)

DEADLINE_S = 60      # a hang fails after this; a working pool answers in a few seconds
FAST_S = 20          # the spawn of the workers included, on a busy 2-core machine
BAD = 5              # the item whose worker dies


# module-level functions and classes: spawn workers unpickle them by name
def die_on_bad(item: int) -> int:
    """SIGKILL the worker running item ``BAD``; the others take a moment (so that the other
    worker is busy, and then terminated by the pool, when the bad one dies)."""
    if item == BAD:
        if multiprocessing.parent_process() is None:   # never the test process itself
            raise RuntimeError('die_on_bad must run in a worker process')
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.1)
    return 10 * item


class NamedJob:
    """Like :func:`die_on_bad`, and names its items as a stage job does (``item_name``)."""

    def item_name(self, item: int) -> str:
        return f'image img_{item:03d}'

    def __call__(self, item: int) -> int:
        return die_on_bad(item)


class DiesWhenUnpickled:
    """Kills the worker that unpickles it (in the pool initializer, before any item)."""

    def __init__(self):
        self.state = 'some state, so that unpickling calls __setstate__'

    def __call__(self, item: int) -> int:
        return item

    def __setstate__(self, state):
        os._exit(3)


def run_with_deadline(call):
    """``call()`` in a thread: ``(its exception or None, seconds, new child processes)``."""
    before = set(multiprocessing.active_children())
    box = {}

    def target():
        try:
            box['value'] = call()
        except BaseException as exc:   # noqa: B902 - handed to the test thread
            box['error'] = exc

    start = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), f'still waiting after {DEADLINE_S} s: the dead worker hangs it'
    seconds = time.monotonic() - start
    left = set(multiprocessing.active_children()) - before
    return box.get('error'), seconds, left


def assert_dead_worker_error(error, seconds, left, name, label):
    assert isinstance(error, ItemError), f'expected an ItemError, got {error!r}'
    assert error.name == name
    assert str(error).startswith(f'{label}: {name} failed: its worker process was killed by '
                                 'SIGKILL')
    assert 'also unfinished' not in str(error)   # the terminated busy worker is not blamed
    assert isinstance(error.__cause__, BrokenProcessPool)
    assert seconds < FAST_S
    assert not left, f'worker processes left running: {left}'


@pytest.mark.parametrize('workers', [1, 2])
def test_streaming_map_names_the_item_of_a_killed_worker(workers):
    def call():
        with StreamingMap(die_on_bad, workers=workers, desc='[demo]', progress=False) as stream:
            for i in range(10):
                stream.submit(i, name=f'image {i}')
            return stream.results()

    error, seconds, left = run_with_deadline(call)
    assert_dead_worker_error(error, seconds, left, f'image {BAD}', '[demo]')


@pytest.mark.parametrize('chunksize', [1, 2, 4])
def test_map_images_names_the_item_of_a_killed_worker(chunksize):
    # chunks of 2 and 4: the bad item is inside a chunk, not its first item
    items = list(range(10))
    error, seconds, left = run_with_deadline(
        lambda: map_images(die_on_bad, items, workers=2, progress=False, chunksize=chunksize))
    assert_dead_worker_error(error, seconds, left, f'item {BAD}', 'map_images')


def test_imap_images_yields_in_order_up_to_the_dead_worker_and_uses_item_name():
    items = list(range(10))
    seen = []

    def call():
        for result in imap_images(NamedJob(), items, workers=2, desc='[labels]',
                                  progress=False, chunksize=1):
            seen.append(result)

    error, seconds, left = run_with_deadline(call)
    assert_dead_worker_error(error, seconds, left, f'image img_{BAD:03d}', '[labels]')
    assert seen == [10 * i for i in range(len(seen))] and len(seen) <= BAD


def test_a_worker_dying_outside_any_item_names_the_oldest_item():
    error, seconds, left = run_with_deadline(
        lambda: map_images(DiesWhenUnpickled(), [7, 8, 9], workers=2, progress=False))
    assert isinstance(error, ItemError), f'expected an ItemError, got {error!r}'
    assert error.name == 'item 7' and 'outside any item' in str(error)
    assert seconds < FAST_S and not left


def test_a_healthy_pool_still_gives_every_result_in_order():
    items = [0, 1, 2, 3, 4, 6, 7]   # no BAD
    error, _, left = run_with_deadline(
        lambda: assert_equal(map_images(die_on_bad, items, workers=2, progress=False,
                                        chunksize=2), [10 * i for i in items]))
    assert error is None and not left


def assert_equal(got, want):
    assert got == want


def test_refine_chain_job_names_its_items_by_image_id(tmp_path):
    dataset = SimpleNamespace(records=[SimpleNamespace(img_id='2007_000032'),
                                       SimpleNamespace(img_id='2007_000039')])
    job = RefineChainJob(dataset, [], tmp_path / 'cams', tmp_path / 'labels')
    assert job.item_name(1) == 'image 2007_000039'
