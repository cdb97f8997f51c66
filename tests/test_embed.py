"""lynkr/kit/embed.py: the embedder on onnxruntime + tokenizers computes what fastembed computes, its
mixed and int8 copies stay close to fp32, and a forked worker can use a model its parent loaded."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lynkr.kit import embed
from tests.conftest import EVAL

ROOT = Path(__file__).resolve().parent.parent
MODEL = os.environ.get("LYNKR_EMBED_MODEL_PATH", "")
needs_model = pytest.mark.skipif(not os.path.isdir(MODEL), reason="LYNKR_EMBED_MODEL_PATH not available offline")

TEXTS = ["how do I exit vim?", "What does `git rebase -i HEAD~3` do?", "sum two numbers in python",
         "a much longer question " * 40, "ünïcödé and emoji 🚀 in a question", ""]


@pytest.fixture(scope="module")
def fp32():
    return embed.Embedder(model_path=MODEL, precision="fp32")


def _derived(tmp_path_factory, precision: str):
    pytest.importorskip("onnx")
    old = os.environ.get("LYNKR_EMBED_CACHE_DIR")
    os.environ["LYNKR_EMBED_CACHE_DIR"] = str(tmp_path_factory.mktemp("embed-cache"))
    try:
        yield embed.Embedder(model_path=MODEL, precision=precision)
    finally:
        if old is None:
            os.environ.pop("LYNKR_EMBED_CACHE_DIR", None)
        else:
            os.environ["LYNKR_EMBED_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    yield from _derived(tmp_path_factory, "int8")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    yield from _derived(tmp_path_factory, "mixed")


def eval_texts(n: int = 200) -> list[str]:
    texts = []
    for name in ("coding-cache-dev.jsonl", "qqp-dev.jsonl"):
        path = EVAL / name
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    d = json.loads(line)
                    texts += [d["a"], d["b"]]
    return list(dict.fromkeys(texts))[:n] or TEXTS


@needs_model
def test_same_vectors_as_fastembed(fp32):
    fastembed = pytest.importorskip("fastembed")
    ref = fastembed.TextEmbedding("sentence-transformers/all-MiniLM-L6-v2", specific_model_path=MODEL, threads=1)
    texts = TEXTS + eval_texts(40)
    want = np.asarray(list(ref.embed(texts, batch_size=len(texts))), dtype=np.float32)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    got = fp32.embed(texts)
    assert got.shape == (len(texts), 384) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-5
    # A batch pads; alone, a text is not padded: the same vector either way.
    assert np.abs(fp32.embed([texts[1]])[0] - got[1]).max() < 1e-5


@needs_model
def test_vectors_are_normalised_and_empty_input(fp32):
    v = fp32.embed(TEXTS)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert fp32.embed([]).shape == (0, 384)
    assert fp32.precision == "fp32" and fp32.dim == 384


@needs_model
def test_int8_is_close_to_fp32(fp32, int8):
    assert int8.precision == "int8" and int8.onnx_file.endswith(".onnx")
    assert Path(int8.onnx_file).stat().st_size < Path(fp32.onnx_file).stat().st_size / 3
    texts = eval_texts()
    cos = np.sum(fp32.embed(texts) * int8.embed(texts), axis=1)
    assert cos.mean() >= 0.99 and cos.min() >= 0.97


@needs_model
def test_int8_copy_is_made_once(int8):
    again = embed.Embedder(model_path=MODEL, precision="int8")
    assert again.onnx_file == int8.onnx_file
    assert len(list(Path(int8.onnx_file).parent.glob("*.onnx"))) == 1


@needs_model
def test_mixed_is_fp32_but_for_rounding(fp32, mixed):
    """The default: the token table in fp16, everything else fp32. Same decisions as fp32."""
    assert mixed.precision == "mixed" and "-e16" in mixed.onnx_file
    assert Path(mixed.onnx_file).stat().st_size < Path(fp32.onnx_file).stat().st_size * 0.8
    pairs = [json.loads(line) for line in (EVAL / "coding-cache-dev.jsonl").read_text().splitlines() if line.strip()] \
        if (EVAL / "coding-cache-dev.jsonl").exists() else [{"a": t, "b": t.upper()} for t in TEXTS]
    a, b = [p["a"] for p in pairs], [p["b"] for p in pairs]
    assert np.sum(fp32.embed(a) * mixed.embed(a), axis=1).min() > 0.99999
    sims32 = np.sum(fp32.embed(a) * fp32.embed(b), axis=1)
    sims = np.sum(mixed.embed(a) * mixed.embed(b), axis=1)
    assert np.abs(sims - sims32).max() < 2e-4


@needs_model
def test_int8_unavailable_falls_back_to_fp32(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("LYNKR_EMBED_CACHE_DIR", str(blocker / "cache"))
    e = embed.Embedder(model_path=MODEL, precision="int8")
    assert e.precision == "fp32" and e.onnx_file.endswith("model.onnx")


def test_precision_is_checked(monkeypatch):
    monkeypatch.setenv("LYNKR_EMBED_PRECISION", "fp8")
    with pytest.raises(embed.EmbedderError, match="fp8"):
        embed.resolve_precision()
    monkeypatch.setenv("LYNKR_EMBED_PRECISION", "INT8")
    assert embed.resolve_precision() == "int8"
    monkeypatch.delenv("LYNKR_EMBED_PRECISION")
    assert embed.resolve_precision() == "int8"


def test_missing_model_path_names_it(tmp_path):
    with pytest.raises(embed.EmbedderError, match="does not exist"):
        embed.Embedder(model_path=str(tmp_path / "nope"))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(embed.EmbedderError, match=str(tmp_path / "m")):
        embed.Embedder(model_path=str(tmp_path / "m"), precision="fp32")


@needs_model
def test_a_local_model_does_not_import_fastembed():
    code = ("import sys; from lynkr.kit.embed import get_embedder; e = get_embedder(precision='fp32'); "
            "e.embed(['x']); print('fastembed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "LYNKR_EMBED_MODEL_PATH": MODEL})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@needs_model
@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_worker_uses_the_parents_model():
    # `lynkr run --workers N` loads the model before forking (preload_for): a child must embed with
    # it, from a thread as semantic_cache does, and get the parent's vectors.
    code = """
import os, sys, threading
import numpy as np
from lynkr.kit.embed import get_embedder, preload_for, _cache
preload_for({"stages": [{"id": "c", "uses": "semantic_cache", "with": {}}, {"id": "t", "uses": "strip_tools"}]})
assert len(_cache) == 1, _cache
e = get_embedder(precision="fp32")
want = e.embed(["how do I exit vim?", "what is a monad"])
pid = os.fork()
if pid == 0:
    out = {}
    t = threading.Thread(target=lambda: out.update(v=get_embedder(precision="fp32").embed(["how do I exit vim?", "what is a monad"])))
    t.start(); t.join(60)
    os._exit(0 if "v" in out and np.abs(out["v"] - want).max() < 1e-6 else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "LYNKR_EMBED_MODEL_PATH": MODEL, "LYNKR_EMBED_PRECISION": "fp32"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def test_preload_for_only_pipelines_that_embed(monkeypatch):
    asked = []
    monkeypatch.setattr(embed, "get_embedder", lambda path=None, name=None: asked.append((path, name)))
    embed.preload_for({"stages": [{"uses": "provider_call"}, {"uses": "strip_tools", "with": {"keep": ["Bash"]}}]})
    assert asked == []
    embed.preload_for({"stages": [{"uses": "semantic_cache", "with": {"model_path": "/m", "model": "x/y"}},
                                  {"uses": "strip_tools", "with": {"embed_threshold": 0.3}}, "junk"]})
    assert asked == [("/m", "x/y"), (None, None)]
