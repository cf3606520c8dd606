"""graphc benchmark suite (peers: numpy, torch, jax, pytensor; hook: graphc_impl)."""
