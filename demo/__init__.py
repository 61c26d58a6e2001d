"""The demo: a small corpus and a synthetic mirror site served on loopback."""
