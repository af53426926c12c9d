"""Rateline usage service: usage intake, mediation, rating and the rejected-record queue."""
