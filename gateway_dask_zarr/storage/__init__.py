"""Object storage: a backend per URL scheme, the arrays' format and job store, the embedded SeaweedFS."""
