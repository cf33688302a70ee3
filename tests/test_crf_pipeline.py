"""StreamingMap (wsss_core.refiners.parallel): items submitted one at a time run in worker
processes while the caller goes on; ordered results equal to inline, a bounded window of
items in flight, worker errors re-raised naming the item."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from wsss_core.refiners.dense_crf import dense_crf
from wsss_core.refiners.parallel import ItemError, StreamingMap


# module-level functions and classes: spawn workers unpickle them by name
def crf_of_seed(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    probs = rng.random((3, 10, 14)).astype(np.float32)
    return dense_crf(img, probs, iterations=3)


def fail_on_three(item: int) -> int:
    if item == 3:
        raise ValueError(f'cannot handle {item}')
    return item


class MarkDone:
    """Writes ``done_<item>`` (after a short pause, so a submit that did not wait would
    see it missing) and returns (item, pid)."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def __call__(self, item: int):
        time.sleep(0.05)
        (self.folder / f'done_{item}').touch()
        return item, os.getpid()


def test_pooled_results_equal_inline_in_submission_order():
    seeds = [5, 1, 4, 2, 3]
    with StreamingMap(crf_of_seed, workers=0, progress=False) as inline:
        for s in seeds:
            inline.submit(s)
        want = inline.results()
    with StreamingMap(crf_of_seed, workers=2, progress=False) as pooled:
        for s in seeds:
            pooled.submit(s)
        got = pooled.results()
    assert len(got) == len(seeds)
    for s, a, b in zip(seeds, want, got):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(b, crf_of_seed(s))   # independent: computed here
    assert not np.array_equal(got[0], got[1])


def test_one_worker_is_another_process_and_inline_is_this_one(tmp_path):
    with StreamingMap(MarkDone(tmp_path), workers=0, progress=False) as inline:
        inline.submit(0)
        assert (tmp_path / 'done_0').is_file()          # ran at submit
        assert inline.results() == [(0, os.getpid())]
    with StreamingMap(MarkDone(tmp_path), workers=1, progress=False) as pooled:
        for i in range(1, 4):
            pooled.submit(i)
        out = pooled.results()
    assert [i for i, _ in out] == [1, 2, 3]
    assert len({pid for _, pid in out}) == 1 and out[0][1] != os.getpid()


def test_submit_waits_for_the_oldest_when_the_window_is_full(tmp_path):
    with StreamingMap(MarkDone(tmp_path), workers=1, max_pending=2, progress=False) as stream:
        for i in range(6):
            stream.submit(i)
            assert stream.in_flight <= 2
            if i >= 2:   # two were in flight: submitting item i needed item i - 2 back
                assert (tmp_path / f'done_{i - 2}').is_file()
        assert [r[0] for r in stream.results()] == list(range(6))
        assert stream.in_flight == 0


@pytest.mark.parametrize('workers', [0, 1])
def test_an_error_names_the_item_and_keeps_the_original(workers):
    with pytest.raises(ItemError, match=r"\[demo\]: image three failed: ValueError: "
                                        r"cannot handle 3") as info:
        with StreamingMap(fail_on_three, workers=workers, desc='[demo]',
                          progress=False) as stream:
            for i in range(6):
                stream.submit(i, name='image three' if i == 3 else None)
            stream.results()
    assert info.value.name == 'image three'
    assert isinstance(info.value.__cause__, ValueError)


def test_default_name_and_bad_arguments():
    with pytest.raises(ItemError, match='3 failed'):
        with StreamingMap(fail_on_three, workers=0, progress=False) as stream:
            stream.submit(3)
    with pytest.raises(ValueError, match='workers'):
        StreamingMap(fail_on_three, workers=-1)
    with pytest.raises(ValueError, match='max_pending'):
        StreamingMap(fail_on_three, workers=1, max_pending=0)
    with pytest.raises(TypeError, match='lambda'):
        StreamingMap(lambda x: x, workers=1)
    with StreamingMap(fail_on_three, workers=2, progress=False) as stream:
        assert stream.max_pending == 4   # one running and one waiting per worker
