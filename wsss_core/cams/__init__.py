"""CAM generators and multi-scale/flip inference."""
from .base import BaseCAMGenerator, normalize_cams
from .cam import CAM
from .multiscale import DEFAULT_SCALES, multiscale_cams, multiscale_cams_loop

__all__ = ['BaseCAMGenerator', 'normalize_cams', 'CAM', 'DEFAULT_SCALES', 'multiscale_cams',
           'multiscale_cams_loop']
