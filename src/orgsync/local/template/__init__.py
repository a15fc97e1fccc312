"""template.yaml read for the local stack: YAML and intrinsics, the typed model, the resources."""
