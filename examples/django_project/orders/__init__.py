"""Orders, confirmed by a background task."""
