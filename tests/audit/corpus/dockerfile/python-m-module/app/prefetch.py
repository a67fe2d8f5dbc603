from transformers import BlipForConditionalGeneration, BlipProcessor

CHECKPOINT = "Salesforce/blip-image-captioning-large"

if __name__ == "__main__":
    BlipProcessor.from_pretrained(CHECKPOINT)
    BlipForConditionalGeneration.from_pretrained(CHECKPOINT)
