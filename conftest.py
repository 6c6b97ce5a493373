pytest_plugins = [
    "fixtures.testbed_plugin",
    "fixtures.deployment_plugin",
    "fixtures.disruption_plugin",
    "fixtures.conformance_plugin",
    "fixtures.variant_plugin",
    "fixtures.exit_codes_plugin",
    "fixtures.fault_refusal_plugin",
]
