import os

from vllm import LLM, SamplingParams

llm = LLM(
    model=os.environ["MODEL_ID"],
    revision=os.environ["MODEL_REVISION"],
    tensor_parallel_size=int(os.environ.get("TP", "1")),
)
params = SamplingParams(max_tokens=256)


def complete(prompts: list[str]) -> list[str]:
    return [o.outputs[0].text for o in llm.generate(prompts, params)]
