"""API keys: long-lived credentials for integrations, with scopes, optionally limited to one store."""
