"""Schedules: when they fire (intervals, cron, time zones) and how a store keeps them."""
