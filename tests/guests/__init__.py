"""Phony guest disk images for tests, built from scratch offline.

catalog.py says what guests exist and what inspecting each must yield;
layout.py (pure) plans each disk; hive.py (pure) writes registry hives;
builder.py builds and caches the images.  CLI: python -m tests.guests.
"""
