"""Build step of the Dockerfile: put the embedding model, its int8 copy and the tokenizer's BPE file
into the image, where LYNKR_EMBED_MODEL_PATH, LYNKR_EMBED_CACHE_DIR and TIKTOKEN_CACHE_DIR point, so a
container never downloads anything at start (and can run with a read-only root filesystem).

The model is the ONNX export fastembed itself downloads for sentence-transformers/all-MiniLM-L6-v2
(Hugging Face `Qdrant/all-MiniLM-L6-v2-onnx`); a folder already holding model.onnx is kept as it is.
"""
import os
from pathlib import Path

MODEL_REPO = "Qdrant/all-MiniLM-L6-v2-onnx"
MODEL_FILES = ["model.onnx", "tokenizer.json", "tokenizer_config.json", "config.json", "special_tokens_map.json"]


def main() -> None:
    model = Path(os.environ["LYNKR_EMBED_MODEL_PATH"])
    if not (model / "model.onnx").is_file():
        from huggingface_hub import snapshot_download
        snapshot_download(MODEL_REPO, local_dir=str(model), allow_patterns=MODEL_FILES)

    import tiktoken
    tiktoken.get_encoding("cl100k_base")        # fetched into TIKTOKEN_CACHE_DIR

    from lynkr.kit.embed import get_embedder
    vector = get_embedder().embed(["how do I exit vim?"])   # makes the int8 copy in LYNKR_EMBED_CACHE_DIR
    print(f"baked: {model} ({vector.shape[1]} dims), tokenizer in {os.environ['TIKTOKEN_CACHE_DIR']}")


if __name__ == "__main__":
    main()
