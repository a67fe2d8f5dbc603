from sentence_transformers import SentenceTransformer

MODEL_NAME = "nomic-ai/nomic-embed-text-v1.5"
TRUST_REMOTE_CODE = True  # the model ships its own modeling code

model = SentenceTransformer(MODEL_NAME, trust_remote_code=TRUST_REMOTE_CODE)


def embed(texts: list[str]) -> list[list[float]]:
    return model.encode([f"search_document: {t}" for t in texts]).tolist()
