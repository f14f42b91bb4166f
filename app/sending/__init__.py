"""Sending from the API: `POST /v1/stores/{id}/messages`, with `Idempotency-Key`, human replies pausing the bot."""
