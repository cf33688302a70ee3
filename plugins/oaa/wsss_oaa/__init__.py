"""wsss-oaa: Online Attention Accumulation (Jiang et al., ICCV 2019) and its integral
attention model (OAA+), as a wsss plugin (light: no torch import here).

The classifier (``wsss_oaa.models``), the accumulation hook (``wsss_oaa.accumulation``),
attention drop (``wsss_oaa.attention_drop``), the integral attention loss and model
(``wsss_oaa.integral_attention``), the proxy-label rule (``wsss_oaa.proxy_labels``) and the
attention export stage (``wsss_oaa.stages``) register into the core registries when the
plugin loads (``wsss_oaa.plugin``).
"""
__version__ = '0.1.0'
