"""Files on disk: the DuckDB file worked in short batches, the one writer process, the cache store."""
