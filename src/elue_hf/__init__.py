"""elue-hf."""
