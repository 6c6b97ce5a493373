pytest_plugins = [
    "fixtures.testbed_plugin",
    "fixtures.deployment_plugin",
    "fixtures.variant_plugin",
]
