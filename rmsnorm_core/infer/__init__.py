"""Tooling: ``infer_spec``, measuring what an existing norm computes."""
