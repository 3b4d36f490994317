"""What every tier shares about serving: vLLM arguments, probe timings, metric names, alerts."""
