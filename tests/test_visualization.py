"""Tests for wsss_core.visualization: palette, colorize, overlays, contact sheets."""
import subprocess
import sys

import numpy as np
import pytest

from wsss_core.io import read_image
from wsss_core.visualization import colorize_label, voc_palette
from wsss_core.visualization.overlay import blend, cam_to_rgb, overlay_cam, overlay_label
from wsss_core.visualization.sheet import GRAY, HEADER_HEIGHT, make_sheet, save_sheet


# ----------------------------------------------------------------------------- palette
@pytest.mark.parametrize('index, rgb', [(0, (0, 0, 0)), (1, (128, 0, 0)), (2, (0, 128, 0)),
                                        (7, (128, 128, 128)), (8, (64, 0, 0)),
                                        (15, (192, 128, 128)), (20, (0, 64, 128)),
                                        (255, (224, 224, 192))])
def test_palette_known_entries(index, rgb):
    pal = voc_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert tuple(int(v) for v in pal[index]) == rgb


def test_palette_prefix_and_distinct():
    pal = voc_palette()
    np.testing.assert_array_equal(voc_palette(21), pal[:21])
    assert len({tuple(c) for c in pal.tolist()}) == 256   # a bijection


def test_colorize_label():
    label = np.array([[0, 1], [15, 255]], dtype=np.uint8)
    rgb = colorize_label(label)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 1].tolist() == [128, 0, 0]
    assert rgb[1, 0].tolist() == [192, 128, 128]
    assert rgb[1, 1].tolist() == [224, 224, 192]
    np.testing.assert_array_equal(colorize_label(label.astype(np.int64)), rgb)
    with pytest.raises(ValueError):
        colorize_label(np.array([[300]]))
    with pytest.raises(ValueError):
        colorize_label(np.zeros((2, 2, 3), np.uint8))


def test_palette_import_is_light():
    code = ('import sys, wsss_core.visualization; import wsss_core.io; '
            'bad = [m for m in ("torch", "cv2", "mmengine") if m in sys.modules]; '
            'assert not bad, bad')
    subprocess.run([sys.executable, '-c', code], check=True)


# ----------------------------------------------------------------------------- overlays
def _image(h=6, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8)


def test_overlay_cam_shape_dtype_and_alpha_extremes():
    img = _image()
    cam = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    out = overlay_cam(img, cam, alpha=0.5)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(overlay_cam(img, cam, alpha=0.0), img)
    np.testing.assert_array_equal(overlay_cam(img, cam, alpha=1.0), cam_to_rgb(cam))
    assert not np.array_equal(out, img)


def test_cam_colours_are_rgb_jet():
    rgb = cam_to_rgb(np.array([[0.0, 1.0, 2.0, np.nan]]))
    assert rgb[0, 0].tolist() == [0, 0, 128]     # low = dark blue in RGB order
    assert rgb[0, 1].tolist() == [128, 0, 0]     # high = dark red
    assert rgb[0, 2].tolist() == [128, 0, 0]     # clipped to 1
    assert rgb[0, 3].tolist() == [0, 0, 128]     # NaN -> 0


def test_overlay_cam_resizes_a_small_cam():
    out = overlay_cam(_image(12, 16), np.ones((3, 4), np.float32), alpha=1.0)
    assert out.shape == (12, 16, 3)
    assert (out == np.array([128, 0, 0], np.uint8)).all()


def test_overlay_label_blend_value():
    img = np.full((2, 2, 3), 100, np.uint8)
    label = np.array([[0, 1], [2, 255]], np.uint8)
    np.testing.assert_array_equal(overlay_label(img, label, alpha=0.0), img)
    np.testing.assert_array_equal(overlay_label(img, label, alpha=1.0), colorize_label(label))
    out = overlay_label(img, label, alpha=0.5)
    assert out[0, 1].tolist() == [114, 50, 50]   # (100 + 128) / 2, 100 / 2
    with pytest.raises(ValueError):
        blend(img, img, alpha=1.5)


# ----------------------------------------------------------------------------- sheets
def test_sheet_size_without_headers_and_missing_cells_gray():
    rows = [[_image(), _image(10, 4)], [None]]
    sheet = make_sheet(rows, cell_size=32)
    assert sheet.shape == (2 * 32, 2 * 32, 3) and sheet.dtype == np.uint8
    assert (sheet[32:, :] == np.array(GRAY, np.uint8)).all()      # both cells of row 2 missing
    assert not (sheet[:32, :32] == np.array(GRAY, np.uint8)).all()


def test_sheet_size_with_titles_and_row_labels():
    rows = [[_image(), np.random.default_rng(1).random((5, 5))],
            [_image(seed=2)]]
    plain = make_sheet(rows, titles=['image', 'cam', 'label'], cell_size=40)
    assert plain.shape == (HEADER_HEIGHT + 2 * 40, 3 * 40, 3)      # 3 titles -> 3 columns
    header = plain[:HEADER_HEIGHT]
    assert (header < 255).any()                                   # some text drawn
    labelled = make_sheet(rows, titles=['a', 'b'], row_labels=['2007_000032', 'x'],
                          cell_size=40)
    extra = labelled.shape[1] - 2 * 40
    assert labelled.shape[0] == HEADER_HEIGHT + 80 and extra > 0
    assert (labelled[HEADER_HEIGHT:, :extra] < 255).any()         # row label drawn
    with pytest.raises(ValueError):
        make_sheet(rows, row_labels=['only one'])


def test_sheet_cell_keeps_aspect_ratio():
    wide = np.zeros((10, 40, 3), np.uint8)                         # black, 4:1
    cell = make_sheet([[wide]], cell_size=40)
    assert (cell[15:25] == 0).all()                                # centre band is the image
    assert (cell[:5] == np.array(GRAY, np.uint8)).all()           # padding above is gray


def test_save_sheet_reads_back(tmp_path):
    rows = [[_image(), _image(seed=3)]]
    path = tmp_path / 'sub' / 'sheet.png'
    sheet = save_sheet(path, rows, titles=['a', 'b'], cell_size=24)
    back = read_image(path)
    np.testing.assert_array_equal(back, sheet)
    assert back.shape == (HEADER_HEIGHT + 24, 48, 3)
