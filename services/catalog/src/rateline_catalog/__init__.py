"""Rateline catalog service: products, plans and their versions, plan migrations and tariff
plans, published as events; quotes calls against the imported tariffs."""
