from rateline_shared.migrations import run_env
from rateline_webhooks.db import metadata

run_env(metadata)
