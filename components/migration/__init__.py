"""Moving a deployment between stacks (tiers, clusters, model versions): plan, SLO gates, triggers."""
