"""The model side of the codec: weights, placement on a device, the encode/decode pipeline."""
