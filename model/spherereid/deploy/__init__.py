"""Deployment: the two logged flavours (pyfunc_flavor: the served model; onnx_flavor: the ONNX export
with proven parity), resolving a model, exporting it to ONNX, searching a gallery."""
