"""Tests against real object-store emulators (moto, Azurite, fake-gcs-server) on 127.0.0.1."""
