"""The detached worker: a process that serves a store's queue (`python -m nbjobs.worker`)."""
