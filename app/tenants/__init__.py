"""Tenants: the accounts (a business) that own stores, users and keys."""
