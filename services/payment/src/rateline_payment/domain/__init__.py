"""Pure payment rules: no I/O here."""
