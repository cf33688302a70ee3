"""The DeepLab COCO-init item: the authors' zip (init.caffemodel inside) downloaded from a
loopback server, converted and saved; --from a converted .pth; the recipe's reference."""
from __future__ import annotations

import dataclasses
import io
import zipfile

import pytest
import torch

from wsss_deeplab.testing import caffemodel_of, registered  # noqa: F401
from wsss_deeplab.testing import small_caffe_model as small_model

pytest.importorskip('google.protobuf')

from wsss_core.prepare.fetch import prepare_items  # noqa: E402
from wsss_core.prepare.ledger import item_status  # noqa: E402
from wsss_core.testing.http_server import serve  # noqa: E402


def quiet_report(_message: str) -> None:
    pass


@pytest.fixture
def model(registered):  # noqa: F811
    torch.manual_seed(3)
    m = small_model(num_classes=4)
    with torch.no_grad():
        for v in m.state_dict().values():
            if v.is_floating_point():
                v.copy_(torch.rand(v.shape) + 0.5)
    return m


def items_at(url=None):
    from wsss_deeplab.prepare_items import COCO_INIT
    item = COCO_INIT
    if url is not None:
        item = dataclasses.replace(item, downloads=(dataclasses.replace(
            item.downloads[0], urls=(url,)),))
    return {item.name: item}


def test_the_zip_is_converted_and_loads_through_the_item_reference(model, tmp_path,
                                                                   monkeypatch):
    import wsss_deeplab.prepare_items as prep
    from wsss_deeplab.models.weights import load_segmentor_weights
    monkeypatch.setattr(prep, '_target_model', lambda: small_model(num_classes=4))
    caffemodel_of(model, tmp_path / 'init.caffemodel')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as zf:
        zf.writestr('prototxt_and_model/deploy.prototxt', 'name: "x"')
        zf.write(tmp_path / 'init.caffemodel', 'prototxt_and_model/init.caffemodel')
    roots = {'weights': tmp_path / 'weights'}
    with serve({'/prototxt_and_model.zip': buf.getvalue()}) as server:
        items = items_at(server.url('/prototxt_and_model.zip'))
        prepare_items(['deeplabv2-r101-coco'], items, roots=roots, progress=False,
                      report=quiet_report)
    assert item_status(items['deeplabv2-r101-coco'], roots['weights'], deep=True)[0] == 'present'
    monkeypatch.setenv('WSSS_WEIGHTS', str(roots['weights']))
    fresh = small_model(num_classes=4)
    report = load_segmentor_weights(fresh, 'item:deeplabv2-r101-coco')
    assert report['head'] != 'not loaded'
    for key, value in model.state_dict().items():
        if not key.endswith('num_batches_tracked'):
            assert torch.allclose(fresh.state_dict()[key], value), key


def test_from_a_converted_pth_and_a_file_that_does_not_fit(model, tmp_path, monkeypatch):
    import wsss_deeplab.prepare_items as prep
    from wsss_core.prepare.fetch import PrepareError
    from wsss_core.prepare.convert.state_dict import ConversionError
    monkeypatch.setattr(prep, '_target_model', lambda: small_model(num_classes=4))
    given = tmp_path / 'deeplabv1_resnet101-coco.pth'
    torch.save(model.state_dict(), given)
    roots = {'weights': tmp_path / 'weights'}
    prepare_items(['deeplabv2-r101-coco'], items_at(), roots=roots, from_path=given,
                  progress=False, report=quiet_report)
    saved = torch.load(roots['weights'] / 'deeplabv1_resnet101-coco.pth', weights_only=True)
    assert torch.equal(saved['backbone.conv1.weight'], model.state_dict()['backbone.conv1.weight'])
    other = tmp_path / 'other.pth'
    torch.save({'backbone.conv1.weight': torch.zeros(1)}, other)
    with pytest.raises((ConversionError, PrepareError)):
        prepare_items(['deeplabv2-r101-coco'], items_at(), roots=roots, from_path=other,
                      force=True, progress=False, report=quiet_report)


def test_the_voc_recipe_names_the_item():
    from wsss_core.pipeline.recipe_fragments import fragment_stage_options
    model = fragment_stage_options('deeplab::_recipes/voc12_deeplabv2_r101.py', 'deeplab')['model']
    assert model['init_checkpoint'] == 'item:deeplabv2-r101-coco'
