"""Small helpers that know nothing of Django or of oCenter's apps."""
