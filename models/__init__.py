"""Pure-torch VidTwin modules: the autoencoder, its losses and the latent DiT."""

from .autoencoder import PRESETS, VidTwinAE, VidTwinConfig
from .latents import DiagonalGaussian, Latents

__all__ = ["PRESETS", "DiagonalGaussian", "Latents", "VidTwinAE", "VidTwinConfig"]
