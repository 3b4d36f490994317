"""Run a small-tier stack on this machine without Docker or a GPU (`tierscale up --local`)."""
