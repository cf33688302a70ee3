"""Optimisation shared by the methods: parameter groups with lr multipliers
(``DeepLabOptimWrapperConstructor``, DeepLab's rule, also used by OAA, NSROM and EDAM's own
constructor) and the stepped poly schedule (``SteppedPolyLR``, :func:`.poly_schedule.poly_schedule`).
"""
