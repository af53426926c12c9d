"""Pure usage logic (mediation, guiding, rating): no I/O here."""
