"""Users: the people of a tenant, each with a role."""
