"""hfdeploy's server for full-duplex speech models (Moshi, Transformers' layout), built on
Transformers' Moshi and Mimi classes: every conversation stepped together each 80 ms frame
(``lockstep``, ``mimi_stream``, ``engine``), the frame loop (``frames``), the warm-up that
measures the session limit (``warmup``) and the ``/api/chat`` wire format (``protocol``)."""
