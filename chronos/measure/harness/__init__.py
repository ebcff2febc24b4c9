"""What runs a kernel on the device for the `cupy` backend, and what stands in for the device.

cupy_harness.py (the GPU side, inside the worker), worker.py (the subprocess that owns the CUDA
context), instrument.py (the SM-clock PTX transform), compat.py (which driver loads which PTX),
fake_cupy.py (a CuPy whose launches run in the CPU emulator). Imports nothing on purpose: the
worker subprocess loads only what its target needs.
"""
