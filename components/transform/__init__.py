"""transform component."""
