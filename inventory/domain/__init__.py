"""The inventory domain model: pure Python, no framework imports."""
