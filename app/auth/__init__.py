"""Who is calling and what they may do: sign-up, login, tokens, cookie sessions, OIDC, and the `Authenticator`
dependency every tenant-owned route declares (through the aliases in each domain's `auth.py`)."""
