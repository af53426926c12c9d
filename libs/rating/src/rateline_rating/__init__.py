"""Rateline's pure rating and pricing domain, shared by the services that rate or price usage.

No I/O and no framework: the catalog quotes with it, the usage service rates records with it
from its own projections, and invoicing prices period totals with it. It lives in a library of
its own (not in a service) because the architecture forbids one service importing another's
code, and it is not infrastructure, so it does not belong in ``rateline_shared`` either.
"""
