"""Pure invoicing rules (no I/O): billing periods, invoice building, numbering, settlement."""
