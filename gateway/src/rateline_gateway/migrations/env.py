from rateline_gateway.db import metadata
from rateline_shared.migrations import run_env

run_env(metadata)
