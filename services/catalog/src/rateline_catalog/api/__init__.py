"""HTTP routers of the catalog service."""
