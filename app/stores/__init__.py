"""Stores: a tenant's WhatsApp numbers, their linking (QR or pairing code) and their live status."""
