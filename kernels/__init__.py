"""Triton kernels of triton_init (installed as ``triton_init.kernels``): stream format v1 helpers and fills.

``interface`` (plain Python, no triton) holds what the kernels share with their callers; importing it does
not import triton.
"""
