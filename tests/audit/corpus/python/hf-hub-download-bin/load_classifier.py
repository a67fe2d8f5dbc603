import torch
from huggingface_hub import hf_hub_download

REPO = "acme-ml/toxicity-head"
SHA = "c0ffee0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a69"

path = hf_hub_download(REPO, filename="pytorch_model.bin", revision=SHA)
state_dict = torch.load(path, map_location="cpu")
