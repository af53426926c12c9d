"""What every Rateline service shares.

Nothing in here imports a service; services import from here. See docs/architecture.md.
"""
