"""label_store package."""
