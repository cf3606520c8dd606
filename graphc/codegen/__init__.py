"""From an optimized graph to a loaded library: lower -> render (templates/) -> build -> load."""
