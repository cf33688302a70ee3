"""Online attention accumulation (OAA, ICCV 2019 §3.2): the per-(image, class) store with
its accumulation and exact-merge rule (:mod:`.store`) and the training hook (:mod:`.hook`)."""
from .hook import ACCUMULATED_DIR, OAAAccumulationHook
from .store import AttentionStore, max_normalise, score_accepts, to_uint8, topk_accepts

__all__ = ['ACCUMULATED_DIR', 'AttentionStore', 'OAAAccumulationHook', 'max_normalise',
           'score_accepts', 'to_uint8', 'topk_accepts']
