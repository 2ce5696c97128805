"""The payments domain model: pure Python, no framework imports."""
