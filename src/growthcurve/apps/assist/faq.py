"""The FAQ knowledge base: read and check it, embed it (mean-pooled encoder states), index it in faiss."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from growthcurve.errors import DataError, ModelError

__all__ = ["FaqEntry", "FaqIndex", "SentenceEncoder", "read_faq"]


@dataclass(frozen=True)
class FaqEntry:
    """One question/answer pair; ``intent`` None when the FAQ names none (then only global retrieval finds it)."""

    id: int
    question: str
    answer: str
    intent: str | None


def _norm(text: str) -> str:
    """Case-, width- and space-insensitive form, so 'Where is my order?' and 'where is my order ?' collide."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def read_faq(path: str | Path, labels: Iterable[str] | None = None) -> list[FaqEntry]:
    """Read a CSV/JSONL FAQ (question, answer[, intent]) and refuse what would answer badly.

    Empty questions/answers, duplicate questions and intents the classifier does not know are one DataError
    naming the file line: a duplicate would make retrieval pick between two answers at random.
    """
    from growthcurve.data.readers import line_of, read_table, require_columns

    df = read_table(path)
    require_columns(df, ["question", "answer"], path)
    if len(df) == 0:
        raise DataError(f"FAQ '{path}' has no rows: add question,answer pairs")
    known = set(labels) if labels is not None else None
    has_intent = "intent" in df.columns
    seen: dict[str, int] = {}
    out: list[FaqEntry] = []
    for pos in range(len(df)):
        line = line_of(df, pos)
        q, a = df["question"].iloc[pos], df["answer"].iloc[pos]
        for col, v in (("question", q), ("answer", a)):
            if not isinstance(v, str) or not v.strip():
                raise DataError(f"FAQ '{path}' line {line}: the {col} is empty; every row needs a question and answer")
        intent = df["intent"].iloc[pos] if has_intent else None
        if intent is not None and not (isinstance(intent, str) and intent.strip()):
            intent = None  # an FAQ may leave the intent of some rows blank: global retrieval still finds them
        if intent is not None:
            intent = intent.strip()
            if known is not None and intent not in known:
                shown = ", ".join(sorted(known)[:20])
                raise DataError(
                    f"FAQ '{path}' line {line}: intent '{intent}' is not one the classifier knows ({shown})"
                )
        key = _norm(q)
        if key in seen:
            raise DataError(
                f"FAQ '{path}' line {line}: question '{q.strip()}' duplicates line {seen[key]}; keep one answer"
            )
        seen[key] = line
        out.append(FaqEntry(len(out), q.strip(), a.strip(), intent))
    return out


class SentenceEncoder:
    """Mean-pooled, L2-normalised token states of a local encoder folder (MiniLM or any sentence-transformers
    model): the all-MiniLM recipe, written on transformers directly so any BERT-family folder works."""

    def __init__(self, name_or_path: str, max_length: int = 128, batch_size: int = 64) -> None:
        from transformers import AutoModel, AutoTokenizer

        from growthcurve.models.hf import load_pretrained, resolve_model_path

        self.path = resolve_model_path(name_or_path)
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer = load_pretrained(AutoTokenizer, self.path)
        self.model = load_pretrained(AutoModel, self.path)
        self.model.eval()

    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors, so inner product = cosine similarity."""
        import torch

        chunks = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    texts[i : i + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
        dim = int(self.model.config.hidden_size)
        return np.concatenate(chunks) if chunks else np.zeros((0, dim), dtype=np.float32)


def _faiss_index(vectors: np.ndarray, hnsw_min_size: int, hnsw_m: int, ef_search: int) -> Any:
    """IndexFlatIP (exact) for small bases, IndexHNSWFlat with inner product beyond ``hnsw_min_size``."""
    import faiss

    dim = vectors.shape[1]
    index: Any
    if len(vectors) >= hnsw_min_size:
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = ef_search
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


class FaqIndex:
    """A global faiss index over all entries plus one per intent, for retrieval within the predicted intent."""

    def __init__(
        self,
        entries: list[FaqEntry],
        vectors: np.ndarray,
        hnsw_min_size: int = 10_000,
        hnsw_m: int = 32,
        ef_search: int = 64,
    ) -> None:
        if len(entries) != len(vectors):
            raise ModelError(f"{len(entries)} FAQ entries but {len(vectors)} embeddings: rerun assist fit")
        self.entries = entries
        self.kind = "hnsw" if len(entries) >= hnsw_min_size else "flat_ip"
        self.global_index = _faiss_index(vectors, hnsw_min_size, hnsw_m, ef_search)
        self.by_intent: dict[str, tuple[Any, np.ndarray]] = {}
        intents = sorted({e.intent for e in entries if e.intent is not None})
        for intent in intents:
            ids = np.array([e.id for e in entries if e.intent == intent], dtype=np.int64)
            self.by_intent[intent] = (_faiss_index(vectors[ids], hnsw_min_size, hnsw_m, ef_search), ids)

    def search(self, vectors: np.ndarray, k: int, intent: str | None = None) -> list[list[tuple[int, float]]]:
        """Top-k (entry id, cosine) per query vector, within ``intent`` (None: the whole base)."""
        if intent is None:
            index, ids = self.global_index, None
        else:
            index, ids = self.by_intent[intent]
        k = min(k, index.ntotal)
        if k == 0:
            return [[] for _ in range(len(vectors))]
        scores, found = index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        out = []
        for srow, frow in zip(scores, found, strict=True):
            row = [(int(ids[f] if ids is not None else f), float(s)) for s, f in zip(srow, frow, strict=True) if f >= 0]
            out.append(row)
        return out
