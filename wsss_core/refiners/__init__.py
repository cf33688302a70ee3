"""Label refiners: CAMs (and image, saliency) to pseudo labels."""
from .background_threshold import BackgroundThreshold
from .base import LabelRefiner
from .saliency_fusion import SaliencyFusion

__all__ = ['LabelRefiner', 'BackgroundThreshold', 'SaliencyFusion']
