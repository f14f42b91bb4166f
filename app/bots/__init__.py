"""Bots: which bot answers a store's customers, and its configuration (the bots themselves live in workers/)."""
