"""The shared sentence embedder (all-MiniLM-L6-v2 by default) on onnxruntime and tokenizers.

    emb = get_embedder()                 # model_path defaults to $LYNKR_EMBED_MODEL_PATH
    vecs = emb.embed(["how do I exit vim?"])   # float32 array, shape (n, 384), L2-normalised

It computes what fastembed computes for this model (its tokenizer settings, mean pooling over the
attention mask, L2 normalisation) without fastembed's ~20 MB of imports and with a session that
keeps memory low. fastembed is only used to download the model when no local folder is given.

Precision (`$LYNKR_EMBED_PRECISION`, or `precision=`):
- `int8` (the default): a dynamically quantised copy (~23 MB instead of 90, ~65 MB less RSS than
  fp32, ~35 % less CPU per embedding; mean cosine to fp32 0.994). With the cache guard deciding
  above a low threshold, the semantic cache's figures are the same as with `mixed` on every set of
  `benchmarks/cache_quality.py` but qqp-dev (96.1 → 95.8 % precision): docs/cache.md.
- `mixed`: fp32 weights and arithmetic, the token-embedding table (half the file) stored as fp16.
  ~21 MB less RSS than fp32; vectors have cosine >= 0.9999999 to fp32's (see _HALVE_TABLE).
- `fp32`: the file as shipped.
A derived copy is made once, in a child process (the `onnx` package stays out of the server), and
kept in `$LYNKR_EMBED_CACHE_DIR` (default `~/.cache/lynkr/embed`) under the source file's sha256.
When it cannot be made, fp32 is used and logged.

One model per (name, path, precision) per process: `semantic_cache`, `strip_tools` and
`/v1/embeddings` share it, and `lynkr run --workers N` loads it before forking
(`preload_for`) so the workers share its pages. `embed` is thread-safe (one lock; the model
runs on one thread); callers on the event loop run it in a thread pool.

A `model_path` that does not exist or cannot be loaded raises EmbedderError naming the path,
at load time, so a pipeline never starts half-configured.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from lynkr.kit.heap import trim

__all__ = ["Embedder", "EmbedderError", "get_embedder", "check_model_path", "preload_for",
           "DEFAULT_EMBED_MODEL", "PRECISIONS"]

log = logging.getLogger("lynkr.kit.embed")

DEFAULT_EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PRECISIONS = ("mixed", "int8", "fp32")
DEFAULT_PRECISION = "int8"


class EmbedderError(Exception):
    """The embedding model could not be found or loaded."""


class Embedder:
    """An ONNX sentence-embedding model; `embed` is thread-safe and returns normalised vectors."""

    def __init__(self, model_name: str = None, model_path: str | None = None, threads: int = 1,
                 precision: str | None = None):
        self.model_name = model_name or DEFAULT_EMBED_MODEL
        self.model_path = model_path
        requested = resolve_precision(precision)
        where = model_path or f"fastembed's cache ({self.model_name})"
        try:
            model_dir, source = _local_model(model_path) if model_path else _downloaded_model(self.model_name)
            onnx_file, self.precision = source, "fp32"
            if requested != "fp32":
                derived = _derived(source, requested)
                if derived is not None:
                    onnx_file, self.precision = derived, requested
            self.onnx_file = str(onnx_file)
            self._tokenizer, self._pad_id = _load_tokenizer(model_dir)
            self._session = _session(onnx_file, threads)
        except EmbedderError:
            raise
        except Exception as e:
            raise EmbedderError(f"cannot load embedding model from {where}: {type(e).__name__}: {e}") from None
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()
        self.dim = int(self.embed(["dimension probe"]).shape[1])
        trim()   # the model proto and load-time buffers (~30 MB for fp32) are freed by now

    def embed(self, texts: list[str], max_tokens: int | None = None) -> np.ndarray:
        """Normalised vectors of `texts`. `max_tokens` keeps each text's first tokens (with the
        closing special token): the model's cost grows with every token, and a caller that reads
        the whole text anyway (the cache guard) needs only enough of it to find candidates.
        The characters tokenised are bounded too, so a 50K-token text costs what its head costs."""
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        if max_tokens is not None:
            texts = [t[:max_tokens * _CHARS_PER_TOKEN_MAX] for t in texts]
        with self._lock:
            # One `encode` per text, not `encode_batch`: the batch call uses the tokenizer's thread
            # pool, which is unusable in a forked worker once the parent has touched it.
            enc = [_cut(self._tokenizer.encode(t), max_tokens) for t in texts]
            width = max(len(e[0]) for e in enc)
            ids = np.full((len(enc), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(enc), width), dtype=np.int64)
            for i, (e_ids, e_mask) in enumerate(enc):
                ids[i, :len(e_ids)] = e_ids
                mask[i, :len(e_ids)] = e_mask
            feed = {"input_ids": ids}
            if "attention_mask" in self._inputs:
                feed["attention_mask"] = mask
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run(None, feed)[0]
        return _pool_normalise(hidden, mask)

    def __repr__(self) -> str:
        return f"Embedder(model_name={self.model_name!r}, model_path={self.model_path!r}, precision={self.precision!r})"


# No tokenizer of a sentence model makes a token of more than this many characters on average.
_CHARS_PER_TOKEN_MAX = 16


def _cut(enc, max_tokens: int | None) -> tuple[list, list]:
    ids, mask = enc.ids, enc.attention_mask
    if max_tokens is None or len(ids) <= max_tokens:
        return ids, mask
    return ids[:max_tokens - 1] + ids[-1:], mask[:max_tokens]


def _pool_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # fastembed's mean_pooling + normalize: the sum over real tokens in float64, then L2.
    summed = np.sum(hidden, axis=1, where=mask[:, :, None].astype(bool), dtype=np.float64)
    pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return (pooled / norms).astype(np.float32)


def resolve_precision(precision: str | None = None) -> str:
    p = (precision or os.environ.get("LYNKR_EMBED_PRECISION") or DEFAULT_PRECISION).strip().lower()
    if p not in PRECISIONS:
        raise EmbedderError(f"embedding precision {p!r} is not one of {', '.join(PRECISIONS)} "
                            "(LYNKR_EMBED_PRECISION)")
    return p


# -- finding the model ----------------------------------------------------------------------------

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


def _local_model(model_path: str) -> tuple[Path, Path]:
    model_dir = Path(check_model_path(model_path))
    # fastembed's file name for this model; another folder may hold one differently named file.
    source = model_dir / "model.onnx"
    if not source.is_file():
        files = sorted(model_dir.glob("*.onnx"))
        if len(files) != 1:
            raise EmbedderError(f"embedding model path {model_path} holds several .onnx files and no model.onnx")
        source = files[0]
    return model_dir, source


def _downloaded_model(model_name: str) -> tuple[Path, Path]:
    # The normal way on a machine with network: fastembed downloads (or finds in its cache) the
    # files; lazy_load keeps it from building a session of its own.
    from fastembed import TextEmbedding

    inner = TextEmbedding(model_name=model_name, lazy_load=True).model
    model_dir = Path(inner._model_dir)
    return model_dir, model_dir / inner.model_description.model_file


def _load_tokenizer(model_dir: Path):
    """The tokenizer as fastembed sets it up (fastembed/common/preprocessor_utils.py): truncation at
    the config's model_max_length/max_length, the special tokens map added; padding is ours."""
    from tokenizers import AddedToken, Tokenizer

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise EmbedderError(f"embedding model path {model_dir} holds no tokenizer.json")
    cfg = _read_json(model_dir / "tokenizer_config.json")
    config = _read_json(model_dir / "config.json")
    tok = Tokenizer.from_file(str(path))
    limits = [v for v in (cfg.get("model_max_length"), cfg.get("max_length"))
              if isinstance(v, int) and not isinstance(v, bool) and 0 < v <= sys.maxsize]
    truncation = tok.truncation or {}
    tok.enable_truncation(max_length=min(limits) if limits else 512,
                          direction=cfg.get("truncation_side") or truncation.get("direction", "right"))
    for value in _read_json(model_dir / "special_tokens_map.json").values():
        for token in value if isinstance(value, list) else [value]:
            tok.add_special_tokens([AddedToken(**token) if isinstance(token, dict) else token])
    padding = tok.padding or {}
    tok.no_padding()
    pad_token = cfg.get("pad_token") or "[PAD]"
    pad_id = padding.get("pad_id", config.get("pad_token_id"))
    if pad_id is None:
        pad_id = tok.token_to_id(pad_token if isinstance(pad_token, str) else pad_token.get("content", "")) or 0
    return tok, int(pad_id)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


# -- the session ------------------------------------------------------------------------------------

def _session(onnx_file: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The arena and the memory pattern keep the largest activation buffers of any request for
    # good (tens of MB after one 512-token text); one small model on one thread does not need them.
    so.enable_cpu_mem_arena = False
    so.enable_mem_pattern = False
    so.log_severity_level = 3
    return ort.InferenceSession(str(onnx_file), sess_options=so, providers=["CPUExecutionProvider"])


# -- the derived copies (int8, mixed) ----------------------------------------------------------------------------------

def cache_dir() -> Path:
    d = os.environ.get("LYNKR_EMBED_CACHE_DIR")
    if d:
        return Path(d)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lynkr" / "embed"


def _source_hash(source: Path, where: Path) -> str:
    """sha256 of the source model, remembered by (path, size, mtime) so a start reads 90 MB once."""
    st = source.stat()
    stamp = f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo = where / "sources.json"
    known = _read_json(memo) if memo.exists() else {}
    if stamp in known:
        return known[stamp]
    h = hashlib.sha256()
    with open(source, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    try:
        _write_atomic(memo, json.dumps({**known, stamp: digest}).encode())
    except OSError:
        pass
    return digest


def _derived(source: Path, precision: str) -> Path | None:
    """The `precision` copy of `source`, made on first use; None (fp32 then) when it cannot be made."""
    recipe, script = _RECIPES[precision]
    where = cache_dir()
    try:
        where.mkdir(parents=True, exist_ok=True)
        target = where / f"{_source_hash(source, where)[:32]}-{recipe}.onnx"
        if target.is_file():
            return target
        # A child process: it imports `onnx` and holds two copies of the graph, memory a server
        # would keep (glibc rarely gives it back).
        fd, tmp = tempfile.mkstemp(dir=where, suffix=".onnx.part")
        os.close(fd)
        try:
            done = subprocess.run([sys.executable, "-c", script, str(source), tmp],
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError((done.stderr.strip().splitlines() or ["no output"])[-1])
            os.replace(tmp, target)   # atomic: a worker starting at the same time sees all or nothing
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        log.info("embedding model: %s copy made: %s", precision, target)
        return target
    except Exception as e:
        log.warning("embedding model: %s copy of %s unavailable (%s: %s); using fp32", precision, source,
                    type(e).__name__, e)
        return None


# int8: weights int8 with a scale per output channel: per-tensor scales put the cosine to fp32 at
# 0.97 on ../shared/eval (0.83 at worst), per channel at 0.994 (0.959 at worst).
_QUANTIZE = """
import sys, logging
logging.disable(logging.WARNING)   # quantize_dynamic suggests a pre-processing step we measured unneeded
from onnxruntime.quantization import QuantType, quantize_dynamic
quantize_dynamic(sys.argv[1], sys.argv[2], weight_type=QuantType.QInt8, per_channel=True)
"""
# mixed: the token-embedding table (the Gather over the largest 2-D initializer, 47 of the 91 MB
# of all-MiniLM-L6-v2) stored as fp16 and cast back to fp32 after the lookup; every other weight
# and all arithmetic stay fp32. ~21 MB less RSS; on the 2,045 pairs of ../shared/eval the cosine
# of each vector to fp32's is >= 0.9999999, similarities move by 6e-6 on average (5.7e-5 at
# most) and no pair crosses the cache threshold. Rows of int8 instead saved 11 MB more but moved
# 3 pairs across it.
_HALVE_TABLE = """
import sys
import numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
m = onnx.load(sys.argv[1])
g = m.graph
inits = {i.name: i for i in g.initializer}
lookups = [n for n in g.node if n.op_type == "Gather" and n.input[0] in inits and len(inits[n.input[0]].dims) == 2]
node = max(lookups, key=lambda n: np.prod(inits[n.input[0]].dims))
table = inits[node.input[0]]
if table.data_type != TensorProto.FLOAT or sum(1 for n in g.node if table.name in n.input) != 1:
    raise SystemExit("no fp32 token table used by one lookup alone")
half = numpy_helper.from_array(numpy_helper.to_array(table).astype(np.float16), table.name + ".fp16")
g.initializer.remove(table)
g.initializer.append(half)
out = node.output[0]
node.input[0], node.output[0] = half.name, out + ".fp16"
g.node.insert(list(g.node).index(node) + 1, helper.make_node("Cast", [node.output[0]], [out], to=TensorProto.FLOAT))
onnx.save(m, sys.argv[2])
"""
# The recipe's name keys the cached file: change it when the script changes what it makes.
_RECIPES = {"int8": ("int8pc", _QUANTIZE), "mixed": ("e16", _HALVE_TABLE)}


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- one per process ----------------------------------------------------------------------------

_cache: dict[tuple[str, str | None, str], Embedder] = {}
_cache_lock = threading.Lock()


def get_embedder(model_path: str | None = None, model_name: str | None = None,
                 precision: str | None = None) -> Embedder:
    """The process-wide embedder for this model. `model_path=None` means $LYNKR_EMBED_MODEL_PATH,
    and when that is unset too, fastembed downloads `model_name` into its cache the normal way.
    `precision=None` means $LYNKR_EMBED_PRECISION, else int8."""
    if model_path is None:
        model_path = os.environ.get("LYNKR_EMBED_MODEL_PATH") or None
    name = model_name or DEFAULT_EMBED_MODEL
    key = (name, str(Path(model_path).resolve()) if model_path else None, resolve_precision(precision))
    with _cache_lock:
        emb = _cache.get(key)
        if emb is None:
            emb = _cache[key] = Embedder(name, model_path, precision=key[2])
        return emb


# Stages that load the embedder, and when (their `with:` options).
_USERS = {"semantic_cache": lambda opts: True,
          "strip_tools": lambda opts: opts.get("embed_threshold") is not None}


def preload_for(pipeline: dict) -> None:
    """Load the embedder a pipeline's stages will ask for, in the parent of `lynkr run --workers`:
    forked workers then share its pages instead of each loading a copy. Best effort: a stage
    that cannot get its model reports that itself, naming the line."""
    for stage in pipeline.get("stages") or ():
        if not isinstance(stage, dict) or stage.get("enabled") is False:
            continue
        opts = stage.get("with") if isinstance(stage.get("with"), dict) else {}
        wants = _USERS.get(stage.get("uses"))
        if wants is None or not wants(opts):
            continue
        path = opts.get("model_path") or None
        name = opts.get("model") if stage.get("uses") == "semantic_cache" else None
        try:
            get_embedder(path if isinstance(path, str) else None, name if isinstance(name, str) else None)
        except Exception as e:   # noqa: BLE001 — the worker's own load raises it properly
            log.debug("embedder preload skipped: %s", e)
