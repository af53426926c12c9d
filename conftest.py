pytest_plugins = ["rateline_shared.testing"]
