"""vidtwin: a command-line video codec built on the VidTwin autoencoder."""

__version__ = "0.1.0"
