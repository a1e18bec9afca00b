"""Kinline: write to a loved one in prison by plain text message."""
