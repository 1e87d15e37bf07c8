pytest_plugins = ["local_azure.pytest_plugin"]
