"""Video in and out: PyAV streaming, stream facts, tiling frames into model-sized clips."""
