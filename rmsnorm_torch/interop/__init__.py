"""Interop: state dicts and neutral checkpoints, replace_norms, infer_spec."""
