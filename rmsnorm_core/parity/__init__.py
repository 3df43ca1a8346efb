"""The parity kit: the case table, sample problems, the one parity check, problem files
and the local multi-process launcher. Public through :mod:`rmsnorm_core.testing`;
``rmsnorm verify``, ``rmsnorm infer``, the backend registry and the test suite sit above it.
"""
