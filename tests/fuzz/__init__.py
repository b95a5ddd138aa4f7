"""Fuzzing of every decoder on mutated real objects: only typed errors escape, memory stays bounded."""
