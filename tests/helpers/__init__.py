"""Importable test helpers (Ray workers import them by module name)."""
