from fastapi import FastAPI
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("/models/all-mpnet-base-v2")
model.encode(["warm up"])
app = FastAPI()


@app.post("/embed")
def embed(texts: list[str]) -> list[list[float]]:
    return model.encode(texts).tolist()
