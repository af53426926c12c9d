"""HTTP routers of the usage service."""
