"""`make bench`: the embedded stack measured against the floor of its own S3 PUTs."""
