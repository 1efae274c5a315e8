"""Triton kernels of triton_init (installed as ``triton_init.kernels``): stream format v1 helpers and fills."""
