"""The own-data example end to end: a generated folder of images + a CSV of tags through
``wsss-run core::your_data.py`` (shrunk by ``--cfg-options``) down to pseudo labels, the sheet
and report.html, without masks; and ``core::your_data_with_masks.py`` with masks, which adds
the evaluation stages."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ('bird', 'cat', 'dog')   # the sorted union of the tags = label order 1, 2, 3
COLOURS = {'bird': (220, 40, 40), 'cat': (40, 200, 40), 'dog': (40, 40, 220)}
HW = (40, 48)
ODD_HW = (36, 56)                  # one image of another size


def make_folder(root: Path, n: int = 16) -> dict:
    """``images/`` (every fourth image in ``pets/``), ``masks/`` mirroring them, ``tags.csv``;
    returns ``{image id: (relative image path, tags)}``.  Image i shows class ``i % 3`` and,
    for odd i, also class ``(i + 1) % 3``, each as a filled rectangle in its colour."""
    rng = np.random.default_rng(0)
    rows, expected = ['image,tags'], {}
    for i in range(n):
        h, w = ODD_HW if i == 5 else HW
        img = rng.integers(90, 150, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        names = [CLASSES[i % 3]] + ([CLASSES[(i + 1) % 3]] if i % 2 else [])
        for k, name in enumerate(names):
            top, left = 4 + 16 * k, 4 + (3 * i) % 12
            img[top:top + 14, left:left + 20] = COLOURS[name]
            mask[top:top + 14, left:left + 20] = CLASSES.index(name) + 1
        rel = f'pets/img_{i:02d}' if i % 4 == 0 else f'img_{i:02d}'
        for folder, arr, suffix in (('images', img, '.png'), ('masks', mask, '.png')):
            path = root / folder / f'{rel}{suffix}'
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(path)
        rows.append(f'{rel}.png,{";".join(names)}')
        expected[rel.replace('/', '__')] = (rel + '.png', names)
    (root / 'tags.csv').write_text('\n'.join(rows) + '\n')
    return expected


def tiny_options(root: Path) -> list:
    """--cfg-options that shrink the shipped config to seconds on a CPU (stages by name)."""
    return [f'data.data_root={root / "images"}', f'data.labels={root / "tags.csv"}',
            'stages.classify.max_epochs=1', 'stages.classify.batch_size=8',
            'stages.classify.log_interval=1', 'stages.classify.model.backbone.widths=[8,8,16,16]',
            'stages.classify.data.resize.size=[32,32]', 'stages.classify.pipeline.1.pad=4',
            'stages.cams.scales=[1.0]', 'stages.cams.flip=False',
            'stages.cams.resize.short_side=32', 'stages.sheet.num_images=4']


def wsss_run(*args):
    return subprocess.run([sys.executable, '-m', 'wsss_core.cli', *args], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))


def check_pseudo_labels(label_dir: Path, root: Path, expected: dict) -> None:
    """Every image has a label PNG of its size whose values are background, its own tagged
    classes (label = index in the sorted tags + 1) or ignore."""
    assert sorted(p.stem for p in label_dir.glob('*.png')) == sorted(expected)
    for img_id, (rel, names) in expected.items():
        label = np.array(Image.open(label_dir / f'{img_id}.png'))
        img = Image.open(root / 'images' / rel)
        assert label.shape == (img.height, img.width), img_id
        allowed = {0, 255} | {CLASSES.index(n) + 1 for n in names}
        assert set(np.unique(label).tolist()) <= allowed, (img_id, np.unique(label), allowed)


def test_your_data_without_masks_runs_to_labels_sheet_and_report(tmp_path):
    expected = make_folder(tmp_path / 'my_data')
    root, work = tmp_path / 'my_data', tmp_path / 'work'
    out = wsss_run('core::your_data.py', '--work-dir', str(work), '--no-progress',
                   '--cfg-options', *tiny_options(root))
    assert out.returncode == 0, out.stderr[-3000:]
    manifest = json.loads((work / 'classify' / 'manifest.json').read_text())
    assert manifest['artifacts']['class_names'] == list(CLASSES)
    for stage in ('labels_threshold', 'labels_saliency'):
        check_pseudo_labels(work / stage / 'labels', root, expected)
    # image | CAM 1 | CAM 2 | two label stages (no ground-truth column without masks):
    # 5 cells of 128 px wide, a 24 px header over 4 rows of 128 px
    assert Image.open(work / 'sheet' / 'sheet.png').size == (5 * 128, 24 + 4 * 128)
    html = (work / 'report.html').read_text()
    assert 'labels_saliency' in html and 'img_01' in html
    assert not list(work.glob('eval*'))   # nothing needed ground truth


def test_your_data_with_masks_adds_the_evaluation(tmp_path):
    expected = make_folder(tmp_path / 'my_data')
    root, work = tmp_path / 'my_data', tmp_path / 'work'
    out = wsss_run('core::your_data_with_masks.py', '--work-dir', str(work), '--no-progress',
                   '--cfg-options', *tiny_options(root), f'data.mask_dir={root / "masks"}',
                   f'data.class_names=[{",".join(CLASSES)}]')
    assert out.returncode == 0, out.stderr[-3000:]
    check_pseudo_labels(work / 'labels_saliency' / 'labels', root, expected)
    for stage in ('eval_cams', 'eval_labels_threshold', 'eval_labels_saliency'):
        metrics = json.loads((work / stage / 'metrics.json').read_text())['metrics']
        assert 0.0 <= metrics['miou'] <= 1.0, stage
    # the ground-truth column is back: 6 cells wide
    assert Image.open(work / 'sheet' / 'sheet.png').size == (6 * 128, 24 + 4 * 128)
    assert (work / 'report.html').is_file()
