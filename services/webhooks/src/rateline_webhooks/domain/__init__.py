"""Pure webhook rules: no I/O here."""
