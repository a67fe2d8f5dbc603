"""hfdeploy's server for full-duplex speech models: the streaming parts, built on
Transformers' Moshi and Mimi classes (work in progress: the streaming Mimi decoder)."""
