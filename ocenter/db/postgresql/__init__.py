"""PostgreSQL as Django's backend has it, but a persistent connection in steady use is not health-checked on every request."""
