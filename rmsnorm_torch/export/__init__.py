"""Deployment: ONNX export, torch.compile options, export artifacts."""
