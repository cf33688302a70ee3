"""The pipeline: Stage interface, manifests, the runner and the generic stages."""
from .manifest import config_hash, read_manifest
from .pipeline import Pipeline, StageResult
from .stage import Stage, StageContext, StageError

__all__ = ['Pipeline', 'StageResult', 'Stage', 'StageContext', 'StageError', 'config_hash',
           'read_manifest']
