"""The shared sentence embedder (fastembed, all-MiniLM-L6-v2 by default).

    emb = get_embedder()                 # model_path defaults to $LYNKR_EMBED_MODEL_PATH
    vecs = emb.embed(["how do I exit vim?"])   # float32 array, shape (n, 384), L2-normalised

One model per (name, path) per process: `semantic_cache` and `/v1/embeddings` share it. The
ONNX session is loaded once and guarded by a lock, so `embed` is safe from any thread; callers
on the event loop must run it in a thread pool (`await loop.run_in_executor(None, emb.embed, texts)`).

A `model_path` that does not exist or cannot be loaded raises EmbedderError naming the path,
at load time, so a pipeline never starts half-configured.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

__all__ = ["Embedder", "EmbedderError", "get_embedder", "check_model_path", "DEFAULT_EMBED_MODEL"]


class EmbedderError(Exception):
    """The embedding model could not be found or loaded."""


class Embedder:
    """A loaded fastembed TextEmbedding; `embed` is thread-safe and returns normalised vectors."""

    def __init__(self, model_name: str = None, model_path: str | None = None, threads: int = 1):
        from fastembed import TextEmbedding

        self.model_name = model_name or DEFAULT_EMBED_MODEL
        self.model_path = model_path
        kwargs = {"threads": threads}
        if model_path:
            check_model_path(model_path)
            kwargs["specific_model_path"] = str(Path(model_path))
        try:
            self._model = TextEmbedding(model_name=self.model_name, **kwargs)
        except Exception as e:
            where = model_path or f"fastembed's cache ({self.model_name})"
            raise EmbedderError(f"cannot load embedding model from {where}: {type(e).__name__}: {e}") from None
        self._lock = threading.Lock()
        self.dim = int(self.embed(["dimension probe"]).shape[1])

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        # onnxruntime sessions are thread-safe for run(), but fastembed's tokenizer object keeps
        # per-call truncation state; one lock keeps it simple and the model runs on one thread.
        with self._lock:
            vecs = np.asarray(list(self._model.embed(list(texts), batch_size=max(1, len(texts)))), dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return vecs / norms

    def __repr__(self) -> str:
        return f"Embedder(model_name={self.model_name!r}, model_path={self.model_path!r})"


def check_model_path(model_path: str | None = None) -> str | None:
    """Without loading anything (for `lynkr validate`): the model folder that would be used, or
    EmbedderError naming it when it is missing or holds no ONNX file. None: fastembed's download."""
    if model_path is None:
        model_path = os.environ.get("LYNKR_EMBED_MODEL_PATH") or None
    if not model_path:
        return None
    p = Path(model_path)
    if not p.is_dir():
        raise EmbedderError(f"embedding model path {model_path} does not exist or is not a folder")
    if not any(p.glob("*.onnx")):
        raise EmbedderError(f"embedding model path {model_path} holds no .onnx file")
    return str(p)


_cache: dict[tuple[str, str | None], Embedder] = {}
_cache_lock = threading.Lock()


def get_embedder(model_path: str | None = None, model_name: str | None = None) -> Embedder:
    """The process-wide embedder for this model. `model_path=None` means $LYNKR_EMBED_MODEL_PATH,
    and when that is unset too, fastembed downloads `model_name` into its cache the normal way."""
    if model_path is None:
        model_path = os.environ.get("LYNKR_EMBED_MODEL_PATH") or None
    name = model_name or DEFAULT_EMBED_MODEL
    key = (name, str(Path(model_path).resolve()) if model_path else None)
    with _cache_lock:
        emb = _cache.get(key)
        if emb is None:
            emb = _cache[key] = Embedder(name, model_path)
        return emb


DEFAULT_EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
