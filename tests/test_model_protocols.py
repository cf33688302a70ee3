"""The declared model contracts (wsss_core.models.protocols): members, the check's refusal
naming the user, the class and the missing members, wrappers, CAM generators and the
conformance kit's roles."""
from __future__ import annotations

import pytest
import torch

from wsss_core.models.protocols import (PROTOCOLS, BoundaryModel, CAMModel, ModelContractError,
                                        PhasedModel, Segmenter, StepMapsModel, missing_members,
                                        protocol_members, require_model)


class OnlyCAM(torch.nn.Module):
    def cam_logits(self, img):
        return img


class NotCallable:
    cam_logits = 3


def test_each_protocol_declares_its_members():
    assert protocol_members(CAMModel) == ['cam_logits']
    assert protocol_members(Segmenter) == ['data_preprocessor', 'fused_logits']
    assert protocol_members(BoundaryModel) == ['boundary_map', 'data_preprocessor']
    assert protocol_members(StepMapsModel) == ['parse_losses', 'step_map_keys']
    assert protocol_members(PhasedModel) == ['phase']
    assert set(PROTOCOLS.values()) >= {CAMModel, Segmenter, BoundaryModel, StepMapsModel}


def test_require_model_returns_a_conforming_model_and_names_what_is_missing():
    model = OnlyCAM()
    assert require_model(model, CAMModel, 'MakeCAMs') is model and isinstance(model, CAMModel)
    assert missing_members(model, Segmenter) == ['data_preprocessor', 'fused_logits']
    with pytest.raises(ModelContractError, match=r"\[test\] TestSegmentor needs a model with "
                                                 r"data_preprocessor, fused_logits .*OnlyCAM "
                                                 r"has no data_preprocessor, fused_logits"):
        require_model(model, Segmenter, '[test] TestSegmentor')
    assert missing_members(NotCallable(), CAMModel) == ['cam_logits']    # not callable


def test_require_model_looks_inside_a_wrapper():
    wrapper = torch.nn.Module()
    wrapper.module = OnlyCAM()
    assert require_model(wrapper, CAMModel, 'x') is wrapper
    with pytest.raises(ModelContractError, match='OnlyCAM has no phase'):
        require_model(wrapper, PhasedModel, 'GETAMScheduleHook')


def test_step_map_keys_must_hold_what_the_user_reads():
    class Maps(OnlyCAM):
        step_map_keys = ('cam',)

        def parse_losses(self, losses):
            return losses
    require_model(Maps(), StepMapsModel, 'hook', needs=('cam',))
    with pytest.raises(ModelContractError, match="publishes \\('cam',\\).*without logits"):
        require_model(Maps(), StepMapsModel, 'hook', needs=('cam', 'logits'))


def test_the_cam_generator_declares_and_checks_its_protocol():
    from wsss_core.cams.cam import CAM
    assert CAM.model_protocol is CAMModel
    model = OnlyCAM()
    assert CAM().check_model(model, '[cams] MakeCAMs') is model
    with pytest.raises(ModelContractError, match=r'\[cams\] MakeCAMs \(CAM\).*Linear has no '
                                                 'cam_logits'):
        CAM().check_model(torch.nn.Linear(1, 1), '[cams] MakeCAMs')


def test_a_conformance_example_refuses_an_unknown_role():
    from wsss_core.testing.conformance.examples import ComponentExample
    assert ComponentExample('X', roles=('cam_model',)).roles == ('cam_model',)
    with pytest.raises(ValueError, match="unknown role.*'camera'"):
        ComponentExample('X', roles=('camera',))
