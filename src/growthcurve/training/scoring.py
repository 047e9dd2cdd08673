"""Score inputs with a model: class probabilities, per-word tag log-probabilities, metrics of a labelled split.

Shared by the recipes (per-epoch validation, final reports) and by `growthcurve.training.inference`
(evaluating and predicting with a finished run), so a run is scored the same way in both places.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from growthcurve.data.images import ImageSplit
from growthcurve.data.text import TextExamples
from growthcurve.data.tokens import TokenExamples
from growthcurve.evaluation.classification import classification_metrics
from growthcurve.evaluation.ner import allowed_transitions, constrained_decode, ner_scores
from growthcurve.training.batching import IGNORE, Encoded, TokenEncoded, collate, collate_tokens, eval_batches

# ----------------------------------------------------------------------------------------------
# text classification


@torch.inference_mode()
def predict_probs(
    model: torch.nn.Module,
    data: Encoded,
    pad_id: int,
    batch_size: int,
    bf16: bool,
    multi_label: bool,
    device: torch.device,
    desc: str = "evaluate",
    progress: bool = True,
) -> tuple[np.ndarray, float]:
    """Class probabilities for every row (original order) and the mean loss when labels are known."""
    model.eval()
    lengths = data.lengths
    out: np.ndarray | None = None
    loss_sum, n = 0.0, 0
    has_labels = data.labels is not None and len(data.labels) == len(data)
    with tqdm(total=len(data), desc=desc, unit="text", disable=not progress, leave=False) as bar:
        for rows in eval_batches(lengths, batch_size):
            batch = collate(data, rows, pad_id, with_labels=has_labels)
            labels = batch.pop("labels", None)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(**batch).logits.float()
            probs = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)
            if out is None:
                out = np.zeros((len(data), logits.shape[1]), dtype=np.float32)
            out[rows] = probs.cpu().numpy()
            if labels is not None:
                labels = labels.to(device)
                loss = (
                    F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="sum") / logits.shape[1]
                    if multi_label
                    else F.cross_entropy(logits, labels, reduction="sum")
                )
                loss_sum += float(loss)
                n += len(rows)
            bar.update(len(rows))
    assert out is not None
    return out, (loss_sum / n if n else float("nan"))


def classifier_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The module that turns the pooled features into logits: the outermost one named ``classifier``
    (Hugging Face sequence classifiers, the rnn/textcnn baselines, PEFT wrappers around either)."""
    return next((m for name, m in model.named_modules() if name.rpartition(".")[2] == "classifier"), None)


@torch.inference_mode()
def predict_logits_features(
    model: torch.nn.Module,
    data: Encoded,
    pad_id: int,
    batch_size: int,
    bf16: bool,
    device: torch.device,
    desc: str = "features",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits [n, labels] and pooled features [n, d] (the input of the classification head) in row order.

    The features are read by a forward pre-hook on the head, so the forward pass is the one `predict_probs`
    runs (same kernels, same logits); None when the model has no ``classifier`` module.
    """
    if len(data) == 0:
        return np.zeros((0, 0), dtype=np.float32), None
    model.eval()
    head = classifier_head(model)
    seen: list[torch.Tensor] = []

    def grab(_m: torch.nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0]
        seen.append((x[:, 0] if x.dim() == 3 else x).float())  # a head that reads the sequence: its token 0

    hook = head.register_forward_pre_hook(grab) if head is not None else None
    logits_out: np.ndarray | None = None
    feats_out: np.ndarray | None = None
    try:
        with tqdm(total=len(data), desc=desc, unit="text", disable=not progress, leave=False) as bar:
            for rows in eval_batches(data.lengths, batch_size):
                batch = collate(data, rows, pad_id, with_labels=False)
                batch = {k: v.to(device) for k, v in batch.items()}
                seen.clear()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = model(**batch).logits.float()
                if logits_out is None:
                    logits_out = np.zeros((len(data), logits.shape[1]), dtype=np.float32)
                logits_out[rows] = logits.cpu().numpy()
                if seen:
                    if feats_out is None:
                        feats_out = np.zeros((len(data), seen[0].shape[-1]), dtype=np.float32)
                    feats_out[rows] = seen[0].cpu().numpy()
                bar.update(len(rows))
    finally:
        if hook is not None:
            hook.remove()
    assert logits_out is not None
    return logits_out, feats_out


def evaluate_split(
    model: torch.nn.Module,
    data: Encoded,
    pad_id: int,
    batch_size: int,
    bf16: bool,
    multi_label: bool,
    device: torch.device,
    desc: str,
    progress: bool,
) -> tuple[dict[str, float], np.ndarray]:
    """Metrics (loss, accuracy, F1s) and probabilities for one labelled split."""
    probs, loss = predict_probs(model, data, pad_id, batch_size, bf16, multi_label, device, desc, progress)
    metrics = classification_metrics(data.labels, probs, multi_label)
    metrics["loss"] = loss
    return metrics, probs


def logits_loss(logits: np.ndarray, y: np.ndarray, multi_label: bool) -> float:
    """Mean loss of logits as `predict_probs` computes it: cross-entropy, or binary cross-entropy averaged over
    labels for multi-label."""
    z = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
    t = torch.from_numpy(np.asarray(y))
    if multi_label:
        return float(F.binary_cross_entropy_with_logits(z, t.float(), reduction="sum") / z.shape[1] / len(z))
    return float(F.cross_entropy(z, t.long(), reduction="mean"))


def probs_loss(y: np.ndarray, probs: np.ndarray, multi_label: bool) -> float:
    """Mean cross-entropy (binary cross-entropy per label for multi-label) of predicted probabilities."""
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    if multi_label:
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    return float(-np.log(p[np.arange(len(y)), y]).mean())


def join_pairs(texts: list[str], pairs: list[str] | None) -> list[str]:
    """TF-IDF reads one string per row: a text pair is joined with a separator."""
    if pairs is None:
        return texts
    return [f"{a} | {b}" for a, b in zip(texts, pairs, strict=True)]


def tfidf_split(model: Any, ex: TextExamples, multi_label: bool) -> tuple[dict[str, float], np.ndarray]:
    """Metrics (with loss) and probabilities of a TF-IDF classifier on one labelled split."""
    probs = model.predict_proba(join_pairs(ex.texts, ex.pairs))
    metrics = classification_metrics(ex.labels, probs, multi_label)
    metrics["loss"] = probs_loss(ex.labels, probs, multi_label)
    return metrics, probs


# ----------------------------------------------------------------------------------------------
# token classification


@torch.inference_mode()
def word_log_probs(
    model: torch.nn.Module,
    data: TokenEncoded,
    pad_id: int,
    batch_size: int,
    bf16: bool,
    device: torch.device,
    num_labels: int,
    desc: str = "evaluate",
    progress: bool = True,
) -> tuple[list[np.ndarray], float]:
    """Per-word log-probabilities ``[n_words, K]`` per sentence (read at first sub-tokens) and the mean loss.

    A word without a sub-token (whitespace, or cut by max_length) gets probability 1 for ``O`` (index 0).
    """
    model.eval()
    out: list[np.ndarray | None] = [None] * len(data)
    loss_sum, n = 0.0, 0
    has_labels = data.labels is not None and len(data.labels) == len(data)
    with tqdm(total=len(data), desc=desc, unit="sent", disable=not progress, leave=False) as bar:
        for rows in eval_batches(data.lengths, batch_size):
            batch = collate_tokens(data, rows, pad_id, with_labels=has_labels)
            labels = batch.pop("labels", None)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(**batch).logits.float()
            lp = torch.log_softmax(logits, dim=-1).cpu().numpy()
            if labels is not None:
                labels = labels.to(device)
                mask = labels != IGNORE
                if bool(mask.any()):
                    loss_sum += float(F.cross_entropy(logits[mask], labels[mask], reduction="sum"))
                    n += int(mask.sum())
            for r, i in enumerate(rows):
                first = data.first_index[i]
                words = np.full((len(first), num_labels), -1e4, dtype=np.float32)
                words[:, 0] = 0.0
                ok = first >= 0
                words[ok] = lp[r, first[ok]]
                out[i] = words
            bar.update(len(rows))
    return [o for o in out if o is not None], (loss_sum / n if n else float("nan"))


def decode(log_probs: list[np.ndarray], tags: list[str], scheme: str) -> list[list[str]]:
    """Best valid tag sequence per sentence."""
    masks = allowed_transitions(tags, scheme)
    return [[tags[k] for k in constrained_decode(lp, masks)] for lp in log_probs]


def evaluate_tokens(
    model: torch.nn.Module,
    data: TokenEncoded,
    examples: TokenExamples,
    tags: list[str],
    scheme: str,
    pad_id: int,
    batch_size: int,
    bf16: bool,
    device: torch.device,
    desc: str = "evaluate",
    progress: bool = True,
) -> tuple[dict[str, float], list[list[str]]]:
    """Entity-level (strict) metrics, token accuracy and loss on one labelled split, and the predicted tags."""
    lps, loss = word_log_probs(model, data, pad_id, batch_size, bf16, device, len(tags), desc, progress)
    pred = decode(lps, tags, scheme)
    metrics = ner_scores(examples.tags, pred, scheme).as_dict()
    metrics["loss"] = loss
    return metrics, pred


# ----------------------------------------------------------------------------------------------
# image classification


def normalise(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Images in 0-255 (uint8 or float) → float scaled to [0, 1] and standardised per channel."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (pixels.float() / 255.0 - m) / s


@torch.inference_mode()
def image_probs(
    model: torch.nn.Module,
    pixels: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Softmax probabilities ``[n, num_labels]`` for uint8 images."""
    model.eval()
    out = []
    for start in range(0, len(pixels), batch_size):
        x = normalise(pixels[start : start + batch_size], mean, std).to(device)
        out.append(torch.softmax(model(pixel_values=x).logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def split_metrics(
    model: torch.nn.Module, split: ImageSplit, meta: dict[str, Any], batch_size: int, device: torch.device
) -> tuple[dict[str, float], np.ndarray]:
    """Accuracy, F1s and loss of ``model`` on a labelled split, and its probabilities."""
    probs = image_probs(model, split.pixels, meta["mean"], meta["std"], batch_size, device)
    metrics = classification_metrics(split.labels, probs, False)
    metrics["loss"] = probs_loss(split.labels, probs, False)
    return metrics, probs
