"""The store owner's web page: server-rendered templates over the JSON API (cookie session + CSRF)."""
