"""Training: the shared loop (`loop`), run directories (`checkpointing`), DDP (`distributed`), and
the models' steps (`autoencoder`, `dit`). docs/training.md describes `vidtwin train`."""
