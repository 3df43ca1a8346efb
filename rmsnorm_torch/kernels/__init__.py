"""Execution paths: the fused op, the graph path, the blocked CPU kernel, Triton, the
native ONNX op, and the dispatch between them.
"""
