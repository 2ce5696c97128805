"""The orders domain model: pure Python, no framework imports."""
