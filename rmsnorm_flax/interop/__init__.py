"""Interop: param trees and neutral checkpoints, msgpack, Orbax, replace/intercept, infer_spec."""
