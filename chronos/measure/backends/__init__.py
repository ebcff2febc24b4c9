"""The measurement backends and what builds them.

registry.py (names -> factories, `BackendBase`), factory.py (`make_backend`: a backend behind the
store), cached.py (the store wrapper), auto.py (GPU or emulator), and the backends themselves:
emulated.py, cupy.py, replay.py, ray_pool.py. Import from `chronos.measure`; this package
imports nothing on purpose, so that asking for one backend never imports another's dependencies.
"""
