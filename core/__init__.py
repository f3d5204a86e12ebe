"""The store's core: use cases and domain, free of any framework (see docs/architecture.md)."""
