"""Number formats of our own where Django's locale has none we want (FORMAT_MODULE_PATH)."""
