"""The stage store: content-addressed stages, verified by digests, and the leases that train each once."""
