"""How the conformance suite builds and exercises each component of ``plugin.COMPONENTS``:
one example per name (its tiny config; for models and losses also its kind and inputs)."""
from wsss_core.testing.conformance import ComponentExample


def examples():
    return [ComponentExample('MarginLabels', dict(threshold=0.25, margin=0.1))]
