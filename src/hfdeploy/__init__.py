"""hfdeploy."""
