"""What exporting to ONNX and running the result imports besides torch, per exporter.

Torch-free, so that the backend's entry point (``plugins/_plugin.py``) can name these
without importing torch; the exporter (``_artifacts.py``) checks them first.
"""

ONNX_REQUIRES = {
    "torchscript": ("onnx", "onnxruntime"),
    "dynamo": ("onnx", "onnxruntime", "onnxscript"),
}
"""Modules per exporter (verify's ONNX Runtime runners, ``rmsnorm export --onnx
--exporter ...``)."""
