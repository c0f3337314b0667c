"""Test and benchmark helpers that ship with the package (replay servers)."""
