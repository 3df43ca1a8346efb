"""Tooling: ``rmsnorm verify``, the public case table and problems, problem files and the
local multi-process launcher.
"""
