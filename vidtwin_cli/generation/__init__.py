"""Class-conditional generation in latent space: DiT weights, sampling, synthetic motion data."""
