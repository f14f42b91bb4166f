"""Who is calling: the tenant every tenant-owned route is scoped to (`CurrentTenant`)."""
