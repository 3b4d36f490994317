"""The large tier: regional clusters (each a medium-tier MediumTier) behind global traffic."""
