"""Test helpers that are real components (servers, fixtures data), not mocks."""
