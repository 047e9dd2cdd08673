"""Why a text classifier predicted what it did: per-word attributions for the predicted label.

- Token-id models (transformers, rnn/textcnn baselines): Integrated Gradients on the embedding layer
  (Sundararajan et al. 2017) with captum's ``LayerIntegratedGradients``, batched. The baseline keeps the
  special tokens ([CLS], [SEP]) and puts the padding token everywhere else, so the attributions of a text
  sum to ``logit(text) − logit(baseline)`` of the explained label, up to captum's convergence delta, which
  each explanation reports. Word-piece scores are summed per word (the tokenizer's word ids) and the word is
  given with its character offsets into the text.
- TF-IDF runs: the linear model's exact per-n-gram contributions to the predicted label's score
  (tf-idf value × coefficient; for a two-label run, to the log-odds of the predicted label against the
  other); they sum with the intercept to that score (``ngrams`` instead of ``tokens``).
- Image and token-classification runs: none (one line says why).

An explanation is ``{"label", "method", "tokens": [{"text", "start", "end", "score"}], ...}``, tokens in
text order; the prediction answer carries it as ``explanation`` (`growthcurve.evaluation.answer`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from growthcurve.atomic import write_json
from growthcurve.errors import ModelError
from growthcurve.training.runfolder import LoadedRun

N_STEPS = 32  # Riemann steps of the path integral; the convergence delta says whether that was enough
BATCH_TEXTS = 8  # texts per attribution call (each is expanded n_steps times)
TFIDF_TOP = 20  # n-grams shown per TF-IDF explanation (largest |contribution| first)


def why_no_explanations(meta: dict[str, Any]) -> str | None:
    """One line saying why a run cannot be explained, or None when it can."""
    task = meta.get("task", "text-classification")
    if task != "text-classification":
        return (
            f"explanations cover text-classification runs (per-word attributions); this is a {task} run, "
            "which has none here"
        )
    if meta.get("model_type") == "tfidf" and meta.get("multi_label"):
        return (
            "explanations of a multi-label TF-IDF run are not available (one logistic regression per label); "
            "read its per-label coefficients instead"
        )
    if meta.get("quantize_dynamic_int8"):
        return "explanations need gradients, which dynamic-int8 layers do not have: explain the uncompressed run"
    return None


def check_explainable(meta: dict[str, Any], pairs: list[str] | None = None) -> None:
    """Raise the one-line `ModelError` when inputs of this run cannot be explained (before any work)."""
    why = why_no_explanations(meta)
    if why is None and pairs is not None:
        why = "explanations cover single texts; this call passes text pairs"
    if why is not None:
        raise ModelError(why)


def explain_texts(
    run: LoadedRun, texts: list[str], targets: list[int] | None = None, n_steps: int = N_STEPS
) -> list[dict[str, Any]]:
    """One explanation per text for ``targets`` (label ids; default: the predicted label)."""
    check_explainable(run.meta)
    if not texts:
        return []
    if run.meta.get("model_type") == "tfidf":
        return tfidf_contributions(run, texts, targets)
    return integrated_gradients(run, texts, targets, n_steps)


# ---- token-id models: Integrated Gradients --------------------------------------------------------------


def _encodings(tokenizer: Any, texts: list[str], max_length: int) -> list[Any]:
    """The `tokenizers.Encoding` of each text (ids, offsets, word ids), as the model reads it."""
    inner = getattr(tokenizer, "tokenizer_", None)  # the baselines' WordTokenizer wraps a `tokenizers` one
    if inner is not None:
        inner.enable_truncation(max_length)
        encs = inner.encode_batch(list(texts))
        if any(not e.ids for e in encs):  # the model reads such a text as one [UNK]: nothing to attribute to
            raise ModelError("cannot explain an empty text")
        return list(encs)
    out = tokenizer(list(texts), truncation=True, max_length=max_length)
    if not getattr(out, "encodings", None):
        raise ModelError("explanations need a fast (Rust) tokenizer: it gives the word offsets")
    return list(out.encodings)


def _words(enc: Any, text: str, scores: np.ndarray) -> list[dict[str, Any]]:
    """Word-piece scores summed per word, each word with its character span in ``text``."""
    words: dict[int, list[Any]] = {}
    for i, (w, (a, b)) in enumerate(zip(enc.word_ids, enc.offsets, strict=True)):
        if w is None or b <= a:  # special tokens and pieces with no characters
            continue
        if w not in words:
            words[w] = [a, b, 0.0]
        words[w][0], words[w][1] = min(words[w][0], a), max(words[w][1], b)
        words[w][2] += float(scores[i])
    return [
        {"text": text[a:b], "start": int(a), "end": int(b), "score": round(s, 6)}
        for a, b, s in sorted(words.values(), key=lambda x: x[0])
    ]


def integrated_gradients(
    run: LoadedRun, texts: list[str], targets: list[int] | None = None, n_steps: int = N_STEPS
) -> list[dict[str, Any]]:
    """Integrated Gradients of the target label's logit on the embedding layer, per word (see module doc)."""
    from captum.attr import LayerIntegratedGradients

    model = run.model
    model.eval()
    tokenizer = run.tokenizer
    encs = _encodings(tokenizer, texts, int(run.meta["max_length"]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    special = set(getattr(tokenizer, "all_special_ids", []) or []) - {pad_id}
    embeddings = model.get_input_embeddings()

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = model(input_ids=ids, attention_mask=mask).logits
        return logits

    out: list[dict[str, Any]] = []
    for start in range(0, len(texts), BATCH_TEXTS):
        chunk = encs[start : start + BATCH_TEXTS]
        width = max(len(e.ids) for e in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, e in enumerate(chunk):
            ids[r, : len(e.ids)] = torch.tensor(e.ids)
            mask[r, : len(e.ids)] = 1
        keep = mask.bool() & torch.tensor([[int(t) in special for t in row] for row in ids.tolist()])
        baseline = torch.where(keep, ids, torch.full_like(ids, pad_id))
        with torch.no_grad():
            logits = forward(ids, mask).float()
        tgt = (
            logits.argmax(dim=1)
            if targets is None
            else torch.tensor(targets[start : start + BATCH_TEXTS], dtype=torch.long)
        )
        lig = LayerIntegratedGradients(forward, embeddings)
        with torch.enable_grad():
            attr, delta = lig.attribute(
                ids,
                baselines=baseline,
                target=tgt,
                additional_forward_args=(mask,),
                n_steps=n_steps,
                internal_batch_size=max(n_steps, min(len(chunk) * n_steps, 256)),
                return_convergence_delta=True,
            )
        # a model may pad its input inside forward (TextCNN pads short batches to its widest kernel, on the right):
        # the padded positions carry no token of the text
        per_token = (attr[:, : ids.shape[1]].sum(dim=-1) * mask).detach().float().numpy()
        for r, e in enumerate(chunk):
            text = texts[start + r]
            label = int(tgt[r])
            out.append(
                {
                    "label": run.labels[label],
                    "method": "integrated_gradients",
                    "tokens": _words(e, text, per_token[r]),
                    "total": round(float(per_token[r].sum()), 6),
                    "delta": round(float(delta[r]), 6),
                    "n_steps": n_steps,
                }
            )
    return out


# ---- TF-IDF: exact linear contributions --------------------------------------------------------------------


def tfidf_contributions(run: LoadedRun, texts: list[str], targets: list[int] | None = None) -> list[dict[str, Any]]:
    """Per-n-gram contributions (tf-idf × coefficient) to the target label's score of a TF-IDF run."""
    clf = run.model
    pipe = clf.pipeline_
    features = pipe.named_steps["features"]
    lr = pipe.named_steps["clf"]
    x = features.transform(list(texts)).tocsr()
    names: list[tuple[str, str]] = []
    for name, vec in features.transformer_list:
        terms = sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__)
        names += [(name, t) for t in terms]
    classes = [int(c) for c in lr.classes_]
    coef = np.atleast_2d(lr.coef_)
    intercept = np.atleast_1d(lr.intercept_)
    scores = clf.decision_function(texts)
    out = []
    for r in range(len(texts)):
        label = int(np.argmax(scores[r])) if targets is None else int(targets[r])
        if coef.shape[0] == 1:  # binary: one score d = w·x + b for classes_[1]; explain label vs the other
            sign = 1.0 if label == classes[1] else -1.0
            w, b = sign * coef[0], sign * float(intercept[0])
        elif label in classes:
            w, b = coef[classes.index(label)], float(intercept[classes.index(label)])
        else:  # a label absent from training has no coefficients
            w, b = np.zeros(coef.shape[1]), 0.0
        lo, hi = x.indptr[r], x.indptr[r + 1]
        cols, vals = x.indices[lo:hi], x.data[lo:hi]
        contrib = vals * w[cols]
        order = np.argsort(-np.abs(contrib), kind="stable")[:TFIDF_TOP]
        out.append(
            {
                "label": run.labels[label],
                "method": "linear_tfidf",
                "ngrams": [
                    {
                        "ngram": names[int(cols[i])][1],
                        "kind": names[int(cols[i])][0],
                        "score": round(float(contrib[i]), 6),
                    }
                    for i in order
                ],
                "intercept": round(b, 6),
                "total": round(float(contrib.sum()) + b, 6),
                "shown": int(len(order)),
                "ngrams_in_text": int(hi - lo),
            }
        )
    return out


# ---- faithfulness -------------------------------------------------------------------------------------------


def delete_words(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` without the characters of ``spans`` (whitespace collapsed)."""
    keep, pos = [], 0
    for a, b in sorted(spans):
        keep.append(text[pos:a])
        pos = max(pos, b)
    keep.append(text[pos:])
    return " ".join("".join(keep).split())


def aopc(
    prob_of: Any, texts: list[str], explanations: list[dict[str, Any]], labels: list[str], k_max: int = 3,
    n_random: int = 5, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Area over the perturbation curve (Samek et al. 2017) per text: the mean drop of the explained label's
    probability as its k = 1..k_max highest-attributed words are deleted, and the same for k random words
    (mean of ``n_random`` draws). ``prob_of(texts) -> probabilities [n, labels]``. A faithful explanation has
    the larger drop."""
    rng = np.random.default_rng(seed)
    top_rows: list[str] = []
    rand_rows: list[str] = []
    shape: list[tuple[int, int]] = []
    for text, ex in zip(texts, explanations, strict=True):
        words = ex["tokens"]
        k = min(k_max, len(words))
        ranked = sorted(range(len(words)), key=lambda i: -words[i]["score"])
        spans = [(w["start"], w["end"]) for w in words]
        top_rows += [delete_words(text, [spans[i] for i in ranked[:j]]) for j in range(1, k + 1)]
        for _ in range(n_random):
            order = rng.permutation(len(words))
            rand_rows += [delete_words(text, [spans[i] for i in order[:j]]) for j in range(1, k + 1)]
        shape.append((k, n_random))
    base = prob_of(texts)
    p_top = prob_of(top_rows) if top_rows else np.zeros((0, len(labels)))
    p_rand = prob_of(rand_rows) if rand_rows else np.zeros((0, len(labels)))
    out_top, out_rand = np.zeros(len(texts)), np.zeros(len(texts))
    i = j = 0
    for r, ((k, n), ex) in enumerate(zip(shape, explanations, strict=True)):
        c = labels.index(ex["label"])
        p0 = float(base[r, c])
        if k:
            out_top[r] = float(np.mean(p0 - p_top[i : i + k, c]))
            out_rand[r] = float(np.mean(p0 - p_rand[j : j + k * n, c]))
        i, j = i + k, j + k * n
    return out_top, out_rand


# ---- the run report: a few of the worst confusions, explained ------------------------------------------------

CONFUSIONS_SHOWN = 3


def worst_confusions(y: np.ndarray, probs: np.ndarray, n: int = CONFUSIONS_SHOWN) -> list[tuple[int, int, int, int]]:
    """The ``n`` most frequent (gold, predicted) confusions, each with its count and the row of its most
    confident mistake: ``(gold, predicted, count, row)``."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    pairs: dict[tuple[int, int], list[int]] = {}
    for i in wrong:
        pairs.setdefault((int(y[i]), int(pred[i])), []).append(int(i))
    ranked = sorted(pairs.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:n]
    return [(g, p, len(rows), max(rows, key=lambda i: float(probs[i, p]))) for (g, p), rows in ranked]


def write_confusion_explanations(
    run: LoadedRun, split: str, texts: list[str], y: np.ndarray, probs: np.ndarray
) -> list[dict[str, Any]]:
    """Explain the most confident mistake of each of the worst confusions of ``split`` and keep them in
    ``RUN/explanations_<split>.json`` (the model card shows them). Nothing for runs that cannot be explained."""
    if why_no_explanations(run.meta) is not None or run.meta.get("multi_label") or y.ndim != 1:
        return []
    found = worst_confusions(y, probs)
    if not found:
        return []
    exps = explain_texts(run, [texts[r] for _, _, _, r in found], [p for _, p, _, _ in found])
    rows = [
        {"gold": run.labels[g], "predicted": run.labels[p], "count": n, "text": texts[r],
         "probability": round(float(probs[r, p]), 6), "explanation": e}
        for (g, p, n, r), e in zip(found, exps, strict=True)
    ]  # fmt: skip
    write_json(run.path.parent / f"explanations_{split}.json", {"split": split, "confusions": rows})
    return rows
