import argparse

from huggingface_hub import hf_hub_download

ORG = "meta-llama"
NAME = "Llama-3.2-1B-Instruct"

parser = argparse.ArgumentParser()
parser.add_argument("--out", default="./weights")
args = parser.parse_args()

for filename in ("config.json", "tokenizer.json", "model.safetensors"):
    hf_hub_download(repo_id=f"{ORG}/{NAME}", filename=filename, local_dir=args.out)
