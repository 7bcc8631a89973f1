"""The public facade: `Store`, `Job`, the default store and the functions built on them."""
