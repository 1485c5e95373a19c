"""Pure functions on the spec: where guests run, what the cluster draws, what a node loss does."""
