"""Running compiled programs: argument checks, backends, the Function object."""
