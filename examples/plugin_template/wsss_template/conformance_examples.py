"""How the conformance suite builds and exercises each component of ``plugin.COMPONENTS``:
one example per name (its tiny config; for models and losses also its kind and inputs; a
stage is built from its config, with stand-in input names: the suite does not run it)."""
from wsss_core.testing.conformance import ComponentExample


def examples():
    return [ComponentExample('MarginLabels', dict(threshold=0.25, margin=0.1)),
            ComponentExample('DropSmallRegions', dict(name='clean', labels='labels'))]
