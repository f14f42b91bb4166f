"""Onboarding links: an expiring URL that lets someone without an account connect one store's number.

The token in the URL is the only credential: it reaches that one store's status, QR code, events and pairing
code, and nothing else. It dies when it expires, when it is revoked, and once the store is connected.
"""
