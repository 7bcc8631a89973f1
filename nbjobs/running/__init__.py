"""Running jobs in this process: one attempt, local jobs, child processes, alarms, capture."""
