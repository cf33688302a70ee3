"""A missing weight file is an error naming the option that gave it and the absolute path.

Relative paths are resolved against the working directory, which no config states, so the
message must say where it looked; and the hint must name the option the config used
(``checkpoint=``, ``pretrained=``), not always ``checkpoint=``.
"""
from __future__ import annotations

import os
import re

import pytest

from wsss_core.io import DataFileError
from wsss_core.models.timm_backbone import TimmBackbone, load_state_dict_file
from wsss_core.models.torchvision_resnet import TorchvisionResNet


def test_relative_path_is_named_with_its_absolute_form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataFileError) as err:
        load_state_dict_file('weights/r50.pth', option='pretrained')
    message = str(err.value)
    assert "pretrained='weights/r50.pth'" in message
    assert os.path.join(str(tmp_path), 'weights', 'r50.pth') in message
    assert f'working directory {tmp_path}' in message
    assert 'pretrained=None' in message and 'checkpoint' not in message


def test_absolute_path_is_named_as_given(tmp_path):
    path = str(tmp_path / 'r50.pth')
    with pytest.raises(DataFileError, match=re.escape(f'looked at {path}.')):
        load_state_dict_file(path, option='init_checkpoint')


def test_timm_backbone_names_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataFileError, match=r"checkpoint='none\.pth'.*set checkpoint=None"):
        TimmBackbone('resnet18', checkpoint='none.pth')


def test_torchvision_resnet_names_pretrained(tmp_path):
    path = tmp_path / 'resnet50.pth'
    with pytest.raises(DataFileError) as err:
        TorchvisionResNet(depth=50, pretrained=path)
    assert f'pretrained={str(path)!r}' in str(err.value)
    assert 'set pretrained=None' in str(err.value) and 'checkpoint' not in str(err.value)
