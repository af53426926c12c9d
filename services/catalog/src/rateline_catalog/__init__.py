"""Rateline catalog service: plans with a recurring fee and usage rates, published as events."""
