"""Small tier: a Docker Compose project on one GPU host."""
