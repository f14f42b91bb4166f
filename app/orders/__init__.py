"""Orders and bookings: what the stores' bots recorded, listed for the store."""
