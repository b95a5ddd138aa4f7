"""Tests of snapvault:// (snapvault.snapfs)."""
