"""The plugin conformance suite: it fails on planted broken components, naming the component,
the check and what went wrong, and passes on good ones.

A planted plugin (a module written to tmp_path and handed to ``load_plugins`` as an entry
point) declares one good component and one broken one per contract the suite enforces.
"""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap

import pytest

from wsss_core import registry
from wsss_core.plugin_loader import load_plugins
from wsss_core.testing.conformance import ComponentExample, check_plugin
from wsss_core.testing.conformance.checks import first_difference

PLANTED = textwrap.dedent('''
    """A test plugin with one good and several broken components."""
    from wsss_core.hookspecs import PLUGIN_API_VERSION, PluginManifest, hookimpl

    COMPONENTS = {
        'CAM_GENERATORS': ['PlantedGoodCAM', 'PlantedNegativeCAM', 'PlantedWrongClassesCAM'],
        'LABEL_REFINERS': ['PlantedGoodRefiner', 'PlantedOutOfRangeRefiner',
                           'PlantedInt64Refiner'],
        'MODELS': ['PlantedNaNLoss', 'PlantedDetachedLoss', 'PlantedVectorLoss',
                   'PlantedNoisyModule', 'PlantedGoodModule', 'PlantedNeverRegistered',
                   'PlantedNoExample', 'PlantedNoKind'],
    }


    @hookimpl
    def wsss_manifest():
        return PluginManifest(name='planted', version='0.0', api_version=PLUGIN_API_VERSION,
                              components=COMPONENTS, requires=['core'])


    @hookimpl
    def wsss_register():
        import planted_components  # noqa: F401


    @hookimpl
    def wsss_conformance_examples():
        import planted_components
        return planted_components.examples()
''')

COMPONENTS = textwrap.dedent('''
    import numpy as np
    import torch
    from torch import nn

    from wsss_core.cams.base import BaseCAMGenerator
    from wsss_core.refiners.base import LabelRefiner
    from wsss_core.registry import CAM_GENERATORS, LABEL_REFINERS, MODELS
    from wsss_core.testing.conformance import ComponentExample


    @CAM_GENERATORS.register_module()
    class PlantedGoodCAM(BaseCAMGenerator):
        def class_maps(self, model, img, class_ids=None):
            return torch.relu(model.cam_logits(img))


    @CAM_GENERATORS.register_module()
    class PlantedNegativeCAM(BaseCAMGenerator):   # forgot the ReLU
        def class_maps(self, model, img, class_ids=None):
            return model.cam_logits(img) - 1.0


    @CAM_GENERATORS.register_module()
    class PlantedWrongClassesCAM(BaseCAMGenerator):  # drops the last class
        def class_maps(self, model, img, class_ids=None):
            return torch.relu(model.cam_logits(img))[:, :-1]


    @LABEL_REFINERS.register_module()
    class PlantedGoodRefiner(LabelRefiner):
        def refine(self, sample):
            label = np.zeros(sample['img'].shape[:2], np.uint8)
            label[sample['cams'].max(0) > 0.5] = int(sample['class_ids'][0]) + 1
            return dict(sample, label=label)


    @LABEL_REFINERS.register_module()
    class PlantedOutOfRangeRefiner(LabelRefiner):  # class ids not shifted into 1..C
        def refine(self, sample):
            return dict(sample, label=np.full(sample['img'].shape[:2], 7, np.uint8))


    @LABEL_REFINERS.register_module()
    class PlantedInt64Refiner(LabelRefiner):
        def refine(self, sample):
            return dict(sample, label=np.zeros(sample['img'].shape[:2], np.int64))


    @MODELS.register_module()
    class PlantedNaNLoss(nn.Module):
        def forward(self, pred, target):
            return (pred - target).pow(2).mean() * float('nan')


    @MODELS.register_module()
    class PlantedDetachedLoss(nn.Module):
        def forward(self, pred, target):
            return (pred.detach() - target).pow(2).mean()


    @MODELS.register_module()
    class PlantedVectorLoss(nn.Module):   # forgot the reduction
        def forward(self, pred, target):
            return (pred - target).pow(2)


    @MODELS.register_module()
    class PlantedNoisyModule(nn.Module):  # draws from a generator no seed reaches
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.rng = np.random.default_rng()

        def forward(self, x):
            return self.conv(x) + float(self.rng.random())


    @MODELS.register_module()
    class PlantedGoodModule(nn.Module):
        def __init__(self, width=4):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3)

        def forward(self, x):
            return self.conv(x)


    @MODELS.register_module()
    class PlantedNoExample(nn.Module):
        def forward(self, x):
            return x


    @MODELS.register_module()
    class PlantedNoKind(PlantedGoodModule):
        pass


    def _pair(g):
        return torch.randn(4, 3, generator=g).requires_grad_(), torch.randn(4, 3, generator=g)


    def _images(g):
        return (torch.randn(2, 3, 16, 16, generator=g),)


    def examples():
        return [
            ComponentExample('PlantedGoodCAM'),
            ComponentExample('PlantedNegativeCAM'),
            ComponentExample('PlantedWrongClassesCAM'),
            ComponentExample('PlantedGoodRefiner'),
            ComponentExample('PlantedOutOfRangeRefiner'),
            ComponentExample('PlantedInt64Refiner'),
            ComponentExample('PlantedNaNLoss', kind='loss', inputs=_pair),
            ComponentExample('PlantedDetachedLoss', kind='loss', inputs=_pair),
            ComponentExample('PlantedVectorLoss', kind='loss', inputs=_pair),
            ComponentExample('PlantedNoisyModule', kind='module', inputs=_images),
            ComponentExample('PlantedGoodModule', dict(width=4), kind='module', inputs=_images),
            ComponentExample('PlantedNeverRegistered', kind='module', inputs=_images),
            ComponentExample('PlantedNoKind'),
        ]
''')


@pytest.fixture(scope='module')
def planted_report(tmp_path_factory):
    root = tmp_path_factory.mktemp('planted')
    (root / 'planted_plugin.py').write_text(PLANTED)
    (root / 'planted_components.py').write_text(COMPONENTS)
    sys.path.insert(0, str(root))
    try:
        ep = importlib.metadata.EntryPoint(name='planted', value='planted_plugin',
                                           group='wsss.plugins')
        plugin_set = load_plugins(entry_points=[ep])
        assert plugin_set['planted'].status == 'ok', plugin_set['planted'].reason
        yield check_plugin('planted', plugin_set)
    finally:
        sys.path.remove(str(root))
        # leave the registries as found: remove the planted components only (the real
        # plugins that loading registered along the way stay, as the loader records them)
        for reg in registry.ALL_REGISTRIES.values():
            for name, obj in list(reg.module_dict.items()):
                if getattr(obj, '__module__', '') == 'planted_components':
                    reg.module_dict.pop(name)


def _by_subject(report):
    out = {}
    for r in report.results:
        out.setdefault(r.case.subject, {})[r.case.check] = r
    return out


def test_good_components_pass_every_check(planted_report):
    results = _by_subject(planted_report)
    for good in ('PlantedGoodCAM', 'PlantedGoodRefiner', 'PlantedGoodModule'):
        assert {c: r.status for c, r in results[good].items()} == dict(
            registered='passed', build='passed', behaviour='passed', determinism='passed')


@pytest.mark.parametrize('subject, check, message', [
    ('PlantedNegativeCAM', 'behaviour', 'non-negative'),
    ('PlantedWrongClassesCAM', 'behaviour', r'C = 3'),
    ('PlantedOutOfRangeRefiner', 'behaviour', r'label values \[7\] outside 0..3'),
    ('PlantedInt64Refiner', 'behaviour', 'dtype int64, expected uint8'),
    ('PlantedNaNLoss', 'behaviour', 'non-finite'),
    ('PlantedDetachedLoss', 'behaviour', 'does not require grad'),
    ('PlantedVectorLoss', 'behaviour', 'not a scalar'),
    ('PlantedNoisyModule', 'determinism', 'two runs with seed 0 differ'),
    ('PlantedNeverRegistered', 'registered', 'not registered there'),
    ('PlantedNoExample', 'example', 'no conformance example'),
    ('PlantedNoKind', 'build', 'explicit kind'),
])
def test_each_planted_fault_is_caught_by_its_check(planted_report, subject, check, message):
    import re
    result = _by_subject(planted_report)[subject][check]
    assert result.status == 'failed', result
    assert re.search(message, result.detail), result.detail


def test_the_report_fails_and_names_every_broken_component(planted_report):
    assert not planted_report.ok
    failed = {r.case.subject for r in planted_report.failures}
    assert failed == {'PlantedNegativeCAM', 'PlantedWrongClassesCAM', 'PlantedOutOfRangeRefiner',
                      'PlantedInt64Refiner', 'PlantedNaNLoss', 'PlantedDetachedLoss',
                      'PlantedVectorLoss', 'PlantedNoisyModule', 'PlantedNeverRegistered',
                      'PlantedNoExample', 'PlantedNoKind'}
    text = planted_report.format()
    assert "plugin 'planted':" in text and 'FAILED  planted::PlantedNaNLoss::behaviour' in text


def test_an_uninstalled_plugin_is_a_clear_error():
    from wsss_core.testing.conformance import PluginNotCheckable
    with pytest.raises(PluginNotCheckable, match="no plugin named 'nosuch'.*installed: core"):
        check_plugin('nosuch')


def test_example_records_reject_unknown_kinds_and_duplicates():
    from wsss_core.testing.conformance.examples import as_mapping
    with pytest.raises(ValueError, match="unknown kind 'modul'"):
        ComponentExample('X', kind='modul')
    with pytest.raises(ValueError, match="two conformance examples for 'X'"):
        as_mapping([ComponentExample('X'), ComponentExample('X')])


def test_first_difference_sees_tensors_arrays_and_nesting():
    import numpy as np
    import torch
    a = dict(x=torch.zeros(2), y=[np.ones(3), 1])
    assert first_difference(a, dict(x=torch.zeros(2), y=[np.ones(3), 1])) == ''
    assert 'max difference 1' in first_difference(a, dict(x=torch.tensor([0., 1.]),
                                                          y=[np.ones(3), 1]))
    assert "['y'][0]" in first_difference(a, dict(x=torch.zeros(2), y=[np.zeros(3), 1]))
    assert first_difference(torch.tensor([float('nan')]), torch.tensor([float('nan')])) == ''

    import dataclasses

    @dataclasses.dataclass
    class Box:            # its == compares arrays and raises
        value: np.ndarray

    class Plain:          # no == of its own: compared by its attributes
        def __init__(self, value):
            self.value = value
    assert first_difference(Box(np.zeros(3)), Box(np.zeros(3))) == ''
    assert 'arrays differ' in first_difference(Box(np.zeros(3)), Box(np.ones(3)))
    assert first_difference(Plain(1), Plain(1)) == ''
    assert 'vars' in first_difference(Plain(1), Plain(2))


def test_pytest_option_adds_one_item_per_case(tmp_path):
    """``pytest --wsss-plugin core`` collects the core's cases as items (a few run here)."""
    out = subprocess.run([sys.executable, '-m', 'pytest', '--wsss-plugin', 'core', '-q',
                          '-p', 'no:cacheprovider', '-k', 'Resize or quickstart'],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # Resize x 4 checks + the configs quickstart.py and quickstart_pretrained.py
    assert '6 passed' in out.stdout, out.stdout[-2000:]
    missing = subprocess.run([sys.executable, '-m', 'pytest', '--wsss-plugin', 'nosuch', '-q',
                              '-p', 'no:cacheprovider'], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode == 1 and "no plugin named 'nosuch'" in missing.stdout


def test_cli_check_plugin_prints_the_report_and_sets_the_exit_code(monkeypatch, capsys):
    from wsss_core import cli
    from wsss_core.testing import conformance
    from wsss_core.testing.conformance.suite import Case, CheckResult, ConformanceReport

    def fake(name):
        status = 'passed' if name == 'good' else 'failed'
        return ConformanceReport(name, [CheckResult(Case(name, 'X', 'behaviour'), status,
                                                    'labels out of range')])
    monkeypatch.setattr(conformance, 'check_plugin', fake)
    assert cli.main(['--check-plugin', 'good']) == 0
    assert "PASSED  good::X::behaviour" in capsys.readouterr().out
    assert cli.main(['--check-plugin', 'good', '--check-plugin', 'bad']) == 1
    assert 'FAILED  bad::X::behaviour: labels out of range' in capsys.readouterr().out
    monkeypatch.undo()
    assert cli.main(['--check-plugin', 'nosuch']) == 2
    assert "no plugin named 'nosuch'" in capsys.readouterr().err
