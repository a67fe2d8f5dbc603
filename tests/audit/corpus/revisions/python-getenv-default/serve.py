"""Sentiment API: one model, loaded once at start-up."""

import os
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

MODEL_ID = os.environ.get("MODEL_ID", "cardiffnlp/twitter-roberta-base-sentiment-latest")
MODEL_REVISION = os.getenv("MODEL_REVISION", "4ba3d4463bd152c9e4abd892b50844f30c646708")

state = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    state["tok"] = AutoTokenizer.from_pretrained(MODEL_ID, revision=MODEL_REVISION)
    state["model"] = AutoModelForSequenceClassification.from_pretrained(
        MODEL_ID, revision=MODEL_REVISION
    ).eval()
    with torch.inference_mode():
        state["model"](**state["tok"](["warm up"], return_tensors="pt"))
    yield
    state.clear()


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    text: str


@app.post("/predict")
def predict(item: Item):
    batch = state["tok"]([item.text], return_tensors="pt", truncation=True)
    with torch.inference_mode():
        logits = state["model"](**batch).logits
    return {"label": state["model"].config.id2label[int(logits.argmax())]}
