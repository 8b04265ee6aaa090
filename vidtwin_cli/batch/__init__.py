"""Batch jobs: many files through the codec, resumable, on local worker processes or a Ray cluster.

`inputs` finds and shards the files, `manifest` keeps the job state, `jobs` does one file,
`local` and `ray_backend` run jobs in parallel, `runner` ties them together (docs/batch.md).
"""
