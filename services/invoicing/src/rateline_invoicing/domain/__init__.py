"""Pure invoicing rules (no I/O): billing periods, recurring schedules, invoice building,
re-rating adjustments, numbering, settlement."""
