"""A call before it runs: its function and arguments, its options, retry policies and keys."""
