import json

print(json.dumps({"pooling": "mean", "max_batch_tokens": 16384}))
