"""DropSmallRegions: its rule against labels worked out by hand, its declared parameters and
its declared input, checked when the pipeline is built."""
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from wsss_core.config_errors import ConfigBuildError
from wsss_core.pipeline import Pipeline
from wsss_core.pipeline.stage import StageError
from wsss_core.plugin_loader import load_plugins
from wsss_core.registry import STAGES, build
from wsss_template.drop_small_regions import DropSmallRegions, drop_small_regions

X = 255
LABEL = np.array([[1, 1, 0, 0, 2],
                  [1, 0, 0, 0, 0],
                  [0, 0, 0, 2, 0],
                  [3, 0, 2, 0, X]], np.uint8)
# regions (4-connected): the 1s, 3 px; three 2s of 1 px each ((2, 3) and (3, 2) touch only
# at a corner); the 3, 1 px; the 0s, 11 px plus the lone 0 at (3, 3), boxed in by 2, 2, 255


def test_regions_below_min_pixels_become_ignore():
    assert drop_small_regions(LABEL, 2).tolist() == [[1, 1, 0, 0, X],
                                                     [1, 0, 0, 0, 0],
                                                     [0, 0, 0, X, 0],
                                                     [X, 0, X, X, X]]
    assert drop_small_regions(LABEL, 4).tolist() == [[X, X, 0, 0, X],      # 3 px < 4
                                                     [X, 0, 0, 0, 0],
                                                     [0, 0, 0, X, 0],
                                                     [X, 0, X, X, X]]
    assert drop_small_regions(LABEL, 12).tolist() == np.full_like(LABEL, X).tolist()
    assert LABEL[0, 4] == 2                                   # the input is left as it was


def test_a_region_of_exactly_min_pixels_is_kept_and_one_pixel_keeps_everything():
    assert drop_small_regions(np.array([[5, 5, 5, 0]], np.uint8), 3).tolist() == [[5, 5, 5, X]]
    label = np.random.default_rng(0).choice([0, 1, 2, X], size=(6, 7)).astype(np.uint8)
    np.testing.assert_array_equal(drop_small_regions(label, 1), label)


def test_the_stage_declares_its_input_output_and_parameters():
    stage = DropSmallRegions('clean', labels='labels')
    assert stage.inputs() == ['labels'] and [k.name for k in stage.produced_kinds()] == [
        'label_set']
    assert stage.hashed_options() == {'labels': 'labels'}     # min_pixels at its default
    assert DropSmallRegions('c', labels='l', min_pixels=4).hashed_options()['min_pixels'] == 4


def test_a_misspelt_or_bad_option_is_refused_when_the_stage_is_built():
    cfg = dict(type='DropSmallRegions', name='clean', labels='labels')
    with pytest.raises(ConfigBuildError, match=r"'min_pixel' -> did you mean 'min_pixels'\?"):
        build(dict(cfg, min_pixel=4), STAGES)
    with pytest.raises(StageError, match='min_pixels must be >= 1'):
        build(dict(cfg, min_pixels=0), STAGES)


def test_labels_pointed_at_a_cam_stage_is_refused_when_the_pipeline_is_built(tmp_path):
    load_plugins()
    cfg = Config(dict(seed=0, data=dict(type='SyntheticShapes', num_train=4, num_val=2),
                      stages=dict(
                          train=dict(type='TrainClassifier', model=dict(
                              type='CAMClassifier', backbone=dict(type='SmallResNet'))),
                          cams=dict(type='MakeCAMs', source='train'),
                          clean=dict(type='DropSmallRegions', labels='cams'))))
    with pytest.raises(StageError) as err:
        Pipeline(cfg, tmp_path)
    message = str(err.value)
    assert "stage 'clean' (DropSmallRegions) reads labels='cams' as a label set" in message
    assert "stage 'cams' (MakeCAMs) produces a CAM set" in message
    assert not any(Path(tmp_path).iterdir())                 # nothing ran
