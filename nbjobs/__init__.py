"""nbjobs: durable background jobs for Jupyter notebooks."""
