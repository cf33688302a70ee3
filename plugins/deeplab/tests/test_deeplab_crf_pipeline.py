"""TestSegmentor with ``crf_workers``: the CRF of image k runs in worker processes while the
network infers image k+1.  Same files as the two passes in turn (bit for bit), resume as
before, a failing job named by its image, and the overlap shown by the order of events."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from mmengine.config import Config

from wsss_core.pipeline import Pipeline, read_manifest
from wsss_core.pipeline.stage import StageError
from wsss_core.refiners.parallel import ItemError

from wsss_core.pipeline.segmentor_inference import TestSegmentor
from wsss_deeplab.testing import TINY_BACKBONE, TINY_GENERATOR, registered  # noqa: F401

CRF = dict(type='DenseCRF', preset='deeplab')
WAIT_S = 30   # the overlap test's waits give up after this (only when nothing overlaps)


def pipeline_cfg(**test) -> dict:
    """TrainSegmentor on the ground truth (2 updates) -> TestSegmentor on val (8 images)."""
    return dict(
        seed=0,
        data=dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False),
        stages=[dict(type='TrainSegmentor', name='deeplab', labels=None, max_iters=2,
                     batch_size=4, crop_size=41, log_interval=1, checkpoint_interval=2,
                     model=dict(type='DeepLabV2', backbone=dict(TINY_BACKBONE))),
                dict(type='TestSegmentor', name='test', checkpoint='deeplab', split='val',
                     flip=True, crf=CRF, **test)])


def run(cfg, work_dir):
    return {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False).run()}


def files(folder: Path, pattern: str) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.glob(pattern))}


@pytest.fixture(scope='module')
def inline_run(tmp_path_factory, registered):
    """The reference: the two passes in turn (crf_workers=0, the default)."""
    work_dir = tmp_path_factory.mktemp('crf_inline')
    run(pipeline_cfg(), work_dir)
    return work_dir


def trained_copy(inline_run: Path, dest: Path) -> Path:
    shutil.copytree(inline_run / 'deeplab', dest / 'deeplab')
    return dest


def test_pipelined_writes_what_the_two_passes_write_bit_for_bit(inline_run, tmp_path):
    work_dir = trained_copy(inline_run, tmp_path)
    result = run(pipeline_cfg(crf_workers=2), work_dir)['test']
    assert result.status == 'ran'
    want, got = inline_run / 'test', work_dir / 'test'
    for folder, pattern in (('predictions', '*.png'), ('predictions_raw', '*.png'),
                            ('logits', '*.npz')):
        a, b = files(want / folder, pattern), files(got / folder, pattern)
        assert len(a) == 8 and a.keys() == b.keys()
        assert all(a[k] == b[k] for k in a), folder
    assert (got / 'miou.json').read_bytes() == (want / 'miou.json').read_bytes()
    ref, new = read_manifest(want), read_manifest(got)
    assert new['config_hash'] == ref['config_hash']      # crf_workers is not hashed
    assert new['counts'] == ref['counts'] == dict(images=8, computed=8, reused=0, evaluated=8)
    assert new['metrics'] == ref['metrics']


def test_pipelined_run_resumes_from_the_files_there(inline_run, tmp_path):
    work_dir = trained_copy(inline_run, tmp_path)
    shutil.copytree(inline_run / 'test', work_dir / 'test')
    test_dir = work_dir / 'test'
    (test_dir / 'manifest.json').unlink()       # as if it had stopped before finishing
    pngs = sorted((test_dir / 'predictions').glob('*.png'))
    for png in pngs[:3]:
        png.unlink()
    (test_dir / 'logits' / f'{pngs[0].stem}.npz').unlink()
    result = run(pipeline_cfg(crf_workers=1), work_dir)['test']
    assert result.status == 'resumed'
    assert result.manifest['counts'] == dict(images=8, computed=1, reused=7, evaluated=8)
    for folder in ('predictions', 'predictions_raw'):
        assert files(test_dir / folder, '*.png') == files(inline_run / 'test' / folder, '*.png')
    assert json.loads((test_dir / 'miou.json').read_text()) == \
        json.loads((inline_run / 'test' / 'miou.json').read_text())


def test_a_failing_job_is_reraised_naming_its_image(inline_run, tmp_path):
    work_dir = trained_copy(inline_run, tmp_path)
    ids = sorted(p.stem for p in (inline_run / 'test' / 'logits').glob('*.npz'))
    bad = ids[5]
    (work_dir / 'test' / 'logits').mkdir(parents=True)
    (work_dir / 'test' / 'logits' / f'{bad}.npz').write_bytes(b'not an npz file')
    stage = TestSegmentor('test', checkpoint='deeplab', split='val', crf=CRF, crf_workers=1)
    ctx = Pipeline(Config(pipeline_cfg()), work_dir, progress=False).context(stage)
    with pytest.raises(ItemError, match=rf'\[test\] predict: image {bad} failed') as info:
        stage.run(ctx)
    assert info.value.name == f'image {bad}'
    assert not (work_dir / 'test' / 'predictions' / f'{bad}.png').exists()


# ----------------------------------------------------------------------------- overlap
def stamp(path: Path) -> None:
    """Write the monotonic clock (system-wide on Linux) to ``path`` atomically."""
    tmp = path.with_suffix('.tmp')
    tmp.write_text(repr(time.monotonic()))
    os.replace(tmp, path)


def read_stamps(folder: Path, kind: str) -> dict:
    return {int(p.name.rsplit('_', 1)[1]): float(p.read_text())
            for p in folder.glob(f'{kind}_*') if not p.name.endswith('.tmp')}


def wait_for(folder: Path, name: str) -> None:
    """Wait until ``folder/name`` exists; after ``WAIT_S`` give up, and leave a ``gave_up``
    file so that later waits do not wait again (a failing run ends soon)."""
    deadline = time.monotonic() + WAIT_S
    while not (folder / name).exists() and not (folder / 'gave_up').exists():
        if time.monotonic() > deadline:
            (folder / 'gave_up').touch()
        time.sleep(0.01)


class WaitForNextInference:
    """A slow fake CRF around the real job: the job of image k stamps its start, waits until
    the main process has started inferring image k + 1, stamps its end, then runs the real
    job.  Without overlap the main process would be stuck here (inline) or would have
    inferred every image before any job started (two passes in turn)."""

    def __init__(self, job, folder: Path, count: int):
        self.job, self.folder, self.count = job, folder, count

    def __call__(self, index: int):
        stamp(self.folder / f'crf_start_{index}')
        if index + 1 < self.count:
            wait_for(self.folder, f'infer_start_{index + 1}')
        stamp(self.folder / f'crf_end_{index}')
        return self.job(index)


class RecordingTestSegmentor(TestSegmentor):
    """TestSegmentor whose inference of image k + 1 first waits until the CRF of image k has
    started, then stamps its start; its post-processing job is the fake CRF above."""
    __test__ = False
    folder: Path

    def process(self, ctx, index):
        if index > 0:
            wait_for(self.folder, f'crf_start_{index - 1}')
        stamp(self.folder / f'infer_start_{index}')
        super().process(ctx, index)

    def job(self, ctx):
        return WaitForNextInference(super().job(ctx), self.folder, len(self.dataset))


def test_the_crf_of_image_k_overlaps_the_inference_of_image_k_plus_1(inline_run, tmp_path):
    work_dir = trained_copy(inline_run, tmp_path / 'work')
    stage = RecordingTestSegmentor('test', checkpoint='deeplab', split='val', flip=True,
                                   crf=CRF, crf_workers=1)
    stage.folder = tmp_path / 'stamps'
    stage.folder.mkdir()
    record = stage.run(Pipeline(Config(pipeline_cfg()), work_dir, progress=False)
                       .context(stage))
    assert not (stage.folder / 'gave_up').exists()
    infer = read_stamps(stage.folder, 'infer_start')
    start, end = read_stamps(stage.folder, 'crf_start'), read_stamps(stage.folder, 'crf_end')
    assert sorted(infer) == sorted(start) == sorted(end) == list(range(8))
    for k in range(7):
        # the CRF of image k was running when the inference of image k + 1 began
        assert start[k] < infer[k + 1] < end[k], (k, start, infer, end)
    assert record['counts']['computed'] == 8
    for folder in ('predictions', 'predictions_raw'):   # and the output is unchanged
        assert files(work_dir / 'test' / folder, '*.png') == \
            files(inline_run / 'test' / folder, '*.png')


# ----------------------------------------------------------------------------- options
def test_crf_workers_is_checked_and_not_hashed():
    plain = TestSegmentor('t', checkpoint='c', crf=CRF)
    piped = TestSegmentor('t', checkpoint='c', crf=CRF, crf_workers=3)
    assert piped.options == plain.options and 'crf_workers' not in piped.options
    assert (plain.crf_workers, piped.crf_workers) == (0, 3)
    with pytest.raises(StageError, match='crf_workers must be >= 0'):
        TestSegmentor('t', checkpoint='c', crf_workers=-1)

