"""The spec: RMSNormSpec, presets, the rules (TorchScript-compatible) and the dtype plan,
dtypes, errors.
"""
