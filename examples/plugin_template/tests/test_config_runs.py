"""The shipped config runs end to end (on tiny data) and MarginLabels only adds ignore pixels
to what the plain threshold labels say."""
import numpy as np

from wsss_core.config import load_config, merge_options
from wsss_core.io import read_label_png
from wsss_core.pipeline import Pipeline
from wsss_core.plugin_loader import load_plugins
from wsss_core.testing import tiny_data_cfg


def test_config_runs_on_tiny_data(tmp_path):
    load_plugins()
    cfg = load_config('template::synthetic_margin.py')
    cfg.data = tiny_data_cfg()
    merge_options(cfg, {'stages.classify.max_epochs': 1, 'stages.classify.batch_size': 8,
                        'stages.classify.val_split': None, 'stages.cams.batch_size': 8})
    results = {r.name: r for r in Pipeline(cfg, tmp_path, progress=False).run()}
    assert all(r.status == 'ran' for r in results.values())
    margin = sorted((tmp_path / 'labels_margin').rglob('*.png'))
    assert len(margin) == 16
    ignored = 0
    for path in margin:
        plain = read_label_png(tmp_path / 'labels_threshold' / path.relative_to(
            tmp_path / 'labels_margin'))
        ours = read_label_png(path)
        kept = ours != 255
        np.testing.assert_array_equal(ours[kept], plain[kept])
        ignored += int((~kept).sum())
    assert ignored > 0
    metrics = results['eval_margin'].manifest['metrics']
    assert 0 <= metrics['miou'] <= 1 and 0 <= metrics['precision'] <= 1
