"""Make a finished run smaller and faster: ONNX export (fp32/int8), magnitude pruning, dynamic int8."""
