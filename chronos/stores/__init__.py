"""SQLite trajectory log: every step of every episode, append-only (chronos.stores.trajectories).

The measurement cache is part of measurement: chronos.measure.store.
"""
