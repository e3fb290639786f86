"""The embedding cache: keys, bit-identical hits, corrupt files, in-run reuse, eviction, CLI."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import models

from hnm.cache import EmbeddingCache, activate, frozen_embed_fn, model_key, text_keys
from hnm.cache.fingerprint import FORMAT, versions, weights_fingerprint
from hnm.cache.store import KeyedEntries, evict, open_shard, shard_files
from hnm.encoders import tiny_encoder
from hnm.encoders.embed import embed_fn

TEXTS = [f"def f{i}(x): return x * {i}  # sort a list {i % 5}" for i in range(40)]


@pytest.fixture(scope="module")
def model():
    return tiny_encoder(seed=0)


def _shards(root: Path) -> list[Path]:
    return shard_files(root)


def _fill(root: Path, model, texts=TEXTS, batch_size: int = 16, **kw) -> tuple[np.ndarray,
                                                                              EmbeddingCache]:
    cache = EmbeddingCache(root, **kw)
    with activate(cache):
        out = frozen_embed_fn(model, batch_size, progress=False)(texts)
    return out, cache


# ---- keys ---------------------------------------------------------------------------------
def test_key_same_weights_same_key_whatever_object_or_batch_size(model) -> None:
    other = tiny_encoder(seed=0)
    assert model_key(model)[0] == model_key(other)[0]
    assert model_key(model)[0] != model_key(tiny_encoder(seed=1))[0]


def test_key_ignores_the_tokenizer_state_left_by_the_last_call() -> None:
    """A fast tokenizer's serialisation carries the padding and truncation of its last call;
    two processes that encoded different batches first must still share the key."""
    a, b = tiny_encoder(seed=0), tiny_encoder(seed=0)
    b.encode(["a much longer text " * 20], batch_size=1)
    assert model_key(a)[0] == model_key(b)[0]


def test_key_changes_with_weights_in_place(model) -> None:
    m = tiny_encoder(seed=0)
    before, snap = model_key(m)[0], versions(m)
    with torch.no_grad():
        next(m.parameters())[0, 0] += 1e-3
    assert versions(m) != snap  # the cheap guard sees the in-place change
    assert model_key(m)[0] != before
    with torch.no_grad():
        next(m.parameters())[0, 0] -= 1e-3  # back to the starting values (bit for bit? no:
    # float rounding may leave a last-bit difference, so only compare against the first model)
    assert model_key(model)[0] == before


def test_key_changes_after_an_optimizer_step() -> None:
    m = tiny_encoder(seed=0)
    before = weights_fingerprint(m)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    loss = m({**m.tokenize(["a b c"])})["sentence_embedding"].sum()
    loss.backward()
    opt.step()
    assert weights_fingerprint(m) != before


def test_key_changes_with_max_seq_length_and_pooling(model) -> None:
    base = model_key(model)[0]
    m = tiny_encoder(seed=0)
    m.max_seq_length = 32
    assert model_key(m)[0] != base
    m.max_seq_length = model.max_seq_length
    assert model_key(m)[0] == base
    m._modules["1"] = models.Pooling(32, pooling_mode="cls")
    assert model_key(m)[0] != base
    assert model_key(model, normalize=False)[0] != base  # the caller's settings count too


def test_text_keys_change_with_the_text_only() -> None:
    k = text_keys(["abc", "abc", "abd", ""])
    assert k.shape == (4, 2) and k.dtype == np.uint64
    assert (k[0] == k[1]).all() and not (k[0] == k[2]).all() and not (k[0] == k[3]).all()


# ---- hits ---------------------------------------------------------------------------------
def test_hit_is_bit_identical_to_a_fresh_encode(tmp_path: Path, model) -> None:
    fresh = embed_fn(model, 16, progress=False)(TEXTS)
    first, c1 = _fill(tmp_path, model)
    assert first.dtype == np.float32 and np.array_equal(first, fresh)
    assert (c1.encoded_texts, c1.cached_texts) == (len(TEXTS), 0)
    assert len(_shards(tmp_path)) == 1
    hit, c2 = _fill(tmp_path, model, batch_size=8)  # another batch size: same entries
    assert (c2.encoded_texts, c2.cached_texts) == (0, len(TEXTS))
    assert hit.dtype == np.float32 and np.array_equal(hit, fresh)


def test_partial_hit_encodes_only_the_new_texts(tmp_path: Path, model) -> None:
    _fill(tmp_path, model, TEXTS[:20])
    more = TEXTS[10:30] + TEXTS[10:12]  # 10 stored, 10 new, 2 repeated
    out, cache = _fill(tmp_path, model, more)
    assert (cache.encoded_texts, cache.cached_texts) == (10, 12)
    fresh = embed_fn(model, 16, progress=False)(more)
    np.testing.assert_allclose(out, fresh, atol=1e-6)  # other batch mates: last-bit only


def test_in_run_reuse_without_disk(tmp_path: Path, model) -> None:
    cache = EmbeddingCache(tmp_path, embeddings=False, in_run=True)
    with activate(cache):
        f = frozen_embed_fn(model, 16, progress=False)
        a = f(TEXTS)
        b = f(TEXTS[::-1])
    assert np.array_equal(a[::-1], b)
    assert (cache.encoded_texts, cache.cached_texts) == (len(TEXTS), len(TEXTS))
    assert not list(tmp_path.rglob("*.npy"))


def test_cache_off_encodes_every_time(tmp_path: Path, model) -> None:
    cache = EmbeddingCache(tmp_path, embeddings=False, in_run=False)
    with activate(cache):
        f = frozen_embed_fn(model, 16, progress=False)
        f(TEXTS)
        f(TEXTS)
    assert (cache.encoded_texts, cache.cached_texts) == (2 * len(TEXTS), 0)
    assert not list(tmp_path.rglob("*.npy"))


def test_trained_weights_are_keyed_by_their_own_fingerprint(tmp_path: Path) -> None:
    m = tiny_encoder(seed=0)
    _fill(tmp_path, m)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1.01)
    out, cache = _fill(tmp_path, m)
    assert cache.encoded_texts == len(TEXTS)  # never served the starting weights' vectors
    assert np.array_equal(out, embed_fn(m, 16, progress=False)(TEXTS))


@pytest.mark.parametrize("backend", ["bf16", "int8"])
def test_precisions_never_share_entries(tmp_path: Path, backend: str) -> None:
    """float32, bf16 and int8 passes of the same weights are keyed apart, whether the backend
    is passed or is the model's own ``encoder.inference``; each is served its own vectors."""
    from hnm.encoders.inference import set_inference

    m = tiny_encoder(seed=0)
    fp32, _ = _fill(tmp_path, m)
    other, cache = _fill(tmp_path, set_inference(tiny_encoder(seed=0), backend))
    assert (cache.encoded_texts, cache.cached_texts) == (len(TEXTS), 0)
    assert not np.array_equal(other, fp32)
    assert np.array_equal(other, embed_fn(m, 16, progress=False, backend=backend)(TEXTS))
    cache = EmbeddingCache(tmp_path)
    with activate(cache):
        again = frozen_embed_fn(m, 16, progress=False, backend=backend)(TEXTS)
    assert (cache.encoded_texts, cache.cached_texts) == (0, len(TEXTS))
    assert np.array_equal(again, other)


def test_auto_is_keyed_by_what_it_resolves_to(tmp_path: Path, monkeypatch) -> None:
    from hnm import precision
    from hnm.encoders.inference import set_inference

    monkeypatch.setattr(precision, "_SAID", set())
    m = set_inference(tiny_encoder(seed=0), "auto")
    monkeypatch.setenv(precision.ENV, "0")  # auto = torch: the float32 entries
    fp32, _ = _fill(tmp_path, tiny_encoder(seed=0))
    out, cache = _fill(tmp_path, m)
    assert (cache.encoded_texts, cache.cached_texts) == (0, len(TEXTS))
    assert np.array_equal(out, fp32)
    monkeypatch.setenv(precision.ENV, "1")  # auto = bf16: encoded anew, never the float32 ones
    out, cache = _fill(tmp_path, m)
    assert (cache.encoded_texts, cache.cached_texts) == (len(TEXTS), 0)
    assert np.array_equal(out, embed_fn(m, 16, progress=False, backend="bf16")(TEXTS))


def test_no_active_cache_is_plain_embed_fn(model) -> None:
    assert np.array_equal(frozen_embed_fn(model, 16, progress=False)(TEXTS),
                          embed_fn(model, 16, progress=False)(TEXTS))


# ---- damaged files ------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_shard_is_detected_and_reencoded(tmp_path: Path, model, damage: str,
                                                 caplog) -> None:
    fresh, _ = _fill(tmp_path, model)
    (shard,) = _shards(tmp_path)
    data = shard.read_bytes()
    if damage == "truncate":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        shard.write_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
    else:
        shard.write_bytes(b"")
    out, cache = _fill(tmp_path, model)
    assert cache.encoded_texts == len(TEXTS) and cache.cached_texts == 0
    assert np.array_equal(out, fresh)
    assert "checksum" in caplog.text
    (again,) = _shards(tmp_path)  # the damaged file is gone, a valid one replaced it
    assert open_shard(again) is not None


# ---- store: eviction ----------------------------------------------------------------------
def _write(root: Path, key: str, n: int, seed: int) -> Path:
    entry = KeyedEntries(root / FORMAT / key, {"label": key})
    rng = np.random.default_rng(seed)
    entry.add(rng.integers(0, 2**63, (n, 2), dtype=np.uint64),
              rng.random((n, 8), dtype=np.float32))
    entry.flush()
    (path,) = [p for p in (root / FORMAT / key).glob("*.npy")]
    return path


def test_lru_eviction_removes_the_least_recently_used(tmp_path: Path) -> None:
    paths = [_write(tmp_path, f"k{i}", 100, i) for i in range(3)]
    size = paths[0].stat().st_size
    for age, p in zip((300, 100, 200), paths):  # k1 used last, then k2, then k0
        os.utime(p, (1e9 - age, 1e9 - age))
    removed, freed = evict(tmp_path, 2 * size)
    assert (removed, freed) == (1, size)
    assert [p.exists() for p in paths] == [False, True, True]
    evict(tmp_path, size)
    assert [p.exists() for p in paths] == [False, True, False]


def test_reading_a_shard_makes_it_recent(tmp_path: Path, model) -> None:
    _fill(tmp_path, model, TEXTS[:10])
    _fill(tmp_path, model, TEXTS[10:20])
    a, b = sorted(_shards(tmp_path), key=lambda p: p.stat().st_mtime)
    os.utime(a, (1e9, 1e9))
    os.utime(b, (1e9 + 1, 1e9 + 1))
    _fill(tmp_path, model, TEXTS[:5])  # reads a: now the most recent
    _, cache = _fill(tmp_path, model, TEXTS[20:30], max_gb=2.5 * a.stat().st_size / 1e9)
    assert a.exists() and not b.exists()  # b was least recently used


# ---- hnm cache info / clear ---------------------------------------------------------------
def test_cache_info_and_clear(tmp_path: Path, model, capsys) -> None:
    from hnm.commands.cache import main

    _fill(tmp_path, model)
    main(["info", "--dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "1 model key(s), 1 shard(s), 40 text(s)" in out and "SentenceTransformer" in out
    main(["clear", "--dir", str(tmp_path)])
    assert "removed 2 file(s)" in capsys.readouterr().out
    assert not list(tmp_path.rglob("*.npy"))
    main(["info", "--dir", str(tmp_path)])
    assert "0 model key(s)" in capsys.readouterr().out


def test_quantised_weights_have_their_own_fingerprint(model) -> None:
    q = torch.ao.quantization.quantize_dynamic(tiny_encoder(seed=0), {torch.nn.Linear},
                                               dtype=torch.qint8)
    fq = weights_fingerprint(q)
    assert fq is not None and fq != weights_fingerprint(model)


def test_a_model_without_weights_is_never_cached(tmp_path: Path) -> None:
    class Opaque(torch.nn.Module):  # e.g. weights held by an ONNX Runtime session
        def forward(self, x):
            return x

    opaque = Opaque()
    cache = EmbeddingCache(tmp_path)
    with activate(cache):
        for _ in range(2):
            cache.embed(opaque, ["a", "b"], lambda t: np.ones((len(t), 3), np.float32))
    assert (cache.encoded_texts, cache.cached_texts) == (4, 0)
    assert not list(tmp_path.rglob("*.npy"))
