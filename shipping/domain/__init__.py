"""The shipping domain model: pure Python, no framework imports."""
