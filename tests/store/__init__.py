"""Tests of the store: repositories, bulk writes and migrations on SQLite and PostgreSQL."""
