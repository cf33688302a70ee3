"""wsss-moana: axis-based nexus attention (MoANA; Sohn, Jeon, Jung, Kang, Suk) as a wsss
plugin (light: no torch import here).

The MoANA block and the backbones it is inserted into (``wsss_moana.models``) register into
the core registries when the plugin loads (``wsss_moana.plugin``).  The method-independent
parts it uses live in the core: WSOL evaluation (``wsss_core.wsol``,
``EvaluateWSOL``) and the IRN route to pseudo masks (``IRLabels``, ``TrainIRN``,
``RandomWalkLabels``).
"""
__version__ = '0.1.0'
