"""The catalogs, as package data read once and typed: serving engines and GPUs."""
