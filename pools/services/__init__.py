"""Writes to pools: each a keyword-only function that validates, locks, audits and publishes."""
