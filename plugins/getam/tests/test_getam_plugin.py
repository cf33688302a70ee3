"""The GETAM plugin loads through the core's plugin loader, declares exactly what it registers,
and its losses build from the MODELS registry by plain type names."""
from __future__ import annotations

from wsss_getam.testing import registered  # noqa: F401 (fixture; also sets up the process)


def test_manifest_matches_the_registries(registered):  # noqa: F811
    from wsss_core import registry
    from wsss_getam import __version__, plugin
    manifest = plugin.hookimpls.wsss_manifest()
    assert manifest.name == 'getam' and manifest.version == __version__
    assert registered['getam'].status == 'ok'
    for reg_name, names in manifest.components.items():
        reg = getattr(registry, reg_name)
        for name in names:
            cls = reg.get(name)
            assert cls is not None and cls.__module__.startswith('wsss_getam.'), name


def test_losses_build_by_type(registered):  # noqa: F811
    from wsss_core.registry import MODELS, build
    split = build(dict(type='SplitCrossEntropyLoss', loss_weight=0.5), MODELS)
    sal = build(dict(type='SaliencyLoss', mode='intended'), MODELS)
    dense = build(dict(type='DenseEnergyLoss', method='exact'), MODELS)
    assert (split.loss_weight, sal.mode, dense.method) == (0.5, 'intended', 'exact')
