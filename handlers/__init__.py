"""Channel-neutral conversation flows: parse an intent, call one use case, return a Screen."""
