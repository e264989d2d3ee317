"""What runs on Dask workers: the block rule, the chunk and shard writer, verification. No Flask here."""
