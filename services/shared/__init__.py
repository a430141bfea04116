"""Plumbing shared by the services (auth, logging, database, HTTP errors). No domain logic."""
