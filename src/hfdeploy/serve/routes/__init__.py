"""HTTP routes, one module per protocol family, each mounted only for the task it serves."""

#: Tasks whose runner is an :class:`~hfdeploy.serve.encoders.Encoder` (``/tokenize``).
ENCODER_TASKS = frozenset(
    {"feature-extraction", "text-ranking", "text-classification", "token-classification"}
)
