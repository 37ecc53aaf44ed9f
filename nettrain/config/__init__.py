"""The config: schema, safe YAML loading, overrides and problem reports. No TensorFlow here."""
