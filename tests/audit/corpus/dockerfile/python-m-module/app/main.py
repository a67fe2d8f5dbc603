from contextlib import asynccontextmanager

from fastapi import FastAPI, UploadFile
from PIL import Image
from transformers import BlipForConditionalGeneration, BlipProcessor

from app.prefetch import CHECKPOINT

models = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    models["processor"] = BlipProcessor.from_pretrained(CHECKPOINT)
    models["model"] = BlipForConditionalGeneration.from_pretrained(CHECKPOINT)
    blank = Image.new("RGB", (384, 384))
    models["model"].generate(**models["processor"](blank, return_tensors="pt"))
    yield


app = FastAPI(lifespan=lifespan)


@app.post("/caption")
async def caption(file: UploadFile):
    image = Image.open(file.file).convert("RGB")
    out = models["model"].generate(**models["processor"](image, return_tensors="pt"))
    return {"caption": models["processor"].decode(out[0], skip_special_tokens=True)}
