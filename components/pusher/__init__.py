"""pusher component."""
