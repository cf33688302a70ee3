"""The shipped config runs end to end (on tiny data): MarginLabels only adds ignore pixels to
what the plain threshold labels say, and DropSmallRegions writes its rule applied to them."""
import numpy as np

from wsss_core.config import load_config, merge_options
from wsss_core.io import read_label_png
from wsss_core.pipeline import Pipeline
from wsss_core.plugin_loader import load_plugins
from wsss_core.testing import tiny_data_cfg
from wsss_template.drop_small_regions import drop_small_regions


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
    clean = sorted((tmp_path / 'labels_clean' / 'labels').glob('*.png'))
    assert [p.name for p in clean] == [p.name for p in margin]
    for path in clean:
        source = read_label_png(tmp_path / 'labels_margin' / 'labels' / path.name)
        np.testing.assert_array_equal(read_label_png(path), drop_small_regions(source, 16))
    for name in ('eval_margin', 'eval_clean'):
        metrics = results[name].manifest['metrics']
        assert 0 <= metrics['miou'] <= 1 and 0 <= metrics['precision'] <= 1
