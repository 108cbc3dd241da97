"""Deployment front ends: resolve a model, export it to ONNX with proven parity, search a gallery."""
