"""Input/output: video files through PyAV, stores through fsspec, manifests through pyarrow."""
