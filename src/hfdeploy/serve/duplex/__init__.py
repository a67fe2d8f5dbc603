"""hfdeploy's server for full-duplex speech models, built on Transformers' Moshi and Mimi
classes. In progress: the lockstep LM step and the streaming Mimi decoder are here and tested;
the WebSocket route, the frame loop and the plan's engine are not yet."""
