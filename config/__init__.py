"""The store's configuration: the typed settings model (config/settings/, one module per group of sections) loaded
once from config.yaml.

Wiring, not business: core/ never imports it (the composition root hands each desk the values it needs)."""
