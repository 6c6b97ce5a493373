"""The shipped manifests (lws.yaml, seed.yaml). A package only so that installs carry the YAML files."""
