"""The graph IR: types, variables and nodes, ops by family, printers."""
