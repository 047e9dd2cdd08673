"""Text classifiers that need no pretrained weights: BiLSTM/GRU, TextCNN and TF-IDF + logistic regression.

They are the fast baselines a team trains before (or instead of) fine-tuning a transformer. The neural
ones share the transformer's calling convention (``model(input_ids=..., attention_mask=...).logits``)
and tokenizer protocol, so the batching, evaluation and prediction code of the transformer recipe runs
them unchanged. ``BiRNNEncoder`` is the reusable per-token encoder (a BiLSTM tagger builds on it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from growthcurve.atomic import atomic_path, write_json
from growthcurve.errors import ModelError
from growthcurve.models.savable import ARCH_FILE, ClassifierOutput, NullTokenizer, Savable, load_savable

TOKENIZER_FILE = "tokenizer.json"
EMBED_DIM = 128  # word-embedding width of the neural baselines (Kim 2014 used 300 with word2vec; 128 is enough)


# ----------------------------------------------------------------------------------------------
# tokenizer


def _special_id(tok: Any, token: str) -> int:
    """The id of a special token every vocabulary this module builds holds; a vocabulary without it is damaged."""
    i = tok.token_to_id(token)
    if i is None:
        raise ModelError(f"the word vocabulary has no {token} token: the tokenizer file is damaged; train again")
    return int(i)


class WordTokenizer:
    """A WordPiece vocabulary learnt from the training texts (``tokenizers``), callable like a HF tokenizer.

    Lower-cased BERT normalisation and pre-tokenisation (CJK characters become single tokens); words seen
    fewer than ``min_frequency`` times are split into sub-word pieces, so unseen words rarely become [UNK].
    """

    PAD, UNK, SEP = "[PAD]", "[UNK]", "[SEP]"

    def __init__(self, vocab_size: int = 20000, min_frequency: int = 2, lowercase: bool = True) -> None:
        self.vocab_size = vocab_size
        self.min_frequency = min_frequency
        self.lowercase = lowercase

    def fit(self, texts: Sequence[str]) -> WordTokenizer:
        """Learn the vocabulary from ``texts``."""
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

        tok = Tokenizer(models.WordPiece(unk_token=self.UNK))
        tok.normalizer = normalizers.BertNormalizer(lowercase=self.lowercase, handle_chinese_chars=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(
            vocab_size=self.vocab_size,
            min_frequency=self.min_frequency,
            special_tokens=[self.PAD, self.UNK, self.SEP],
            show_progress=False,
        )
        tok.train_from_iterator(list(texts), trainer=trainer)
        sep = tok.token_to_id(self.SEP)
        tok.post_processor = processors.TemplateProcessing(
            single="$A", pair=f"$A {self.SEP} $B:1", special_tokens=[(self.SEP, sep)]
        )
        self.tokenizer_ = tok
        return self

    @property
    def pad_token_id(self) -> int:
        """Id of [PAD] (always 0: it is the first special token)."""
        return _special_id(self.tokenizer_, self.PAD)

    def __len__(self) -> int:
        return self.tokenizer_.get_vocab_size()

    def __call__(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        truncation: bool = True,
        max_length: int = 128,
        return_attention_mask: bool = False,
    ) -> dict[str, list[list[int]]]:
        """Token ids (and token-type ids) per text, without padding: the call ``encode_texts`` makes."""
        tok = self.tokenizer_
        if truncation:
            tok.enable_truncation(max_length)
        else:
            tok.no_truncation()
        inputs: list[Any] = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
        encs = tok.encode_batch(inputs)
        # an empty text gives no tokens; one [UNK] keeps every row non-empty for the RNN and CNN
        unk = _special_id(tok, self.UNK)
        out: dict[str, list[list[int]]] = {
            "input_ids": [e.ids or [unk] for e in encs],
            "token_type_ids": [e.type_ids or [0] for e in encs],
        }
        if return_attention_mask:
            out["attention_mask"] = [[1] * len(ids) for ids in out["input_ids"]]
        return out

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``tokenizer.json`` into ``path``."""
        with atomic_path(Path(path) / TOKENIZER_FILE) as tmp:
            self.tokenizer_.save(str(tmp))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> WordTokenizer:
        """Load the tokenizer saved by :meth:`save_pretrained`."""
        from tokenizers import Tokenizer

        obj = cls()
        obj.tokenizer_ = Tokenizer.from_file(str(Path(path) / TOKENIZER_FILE))
        return obj


# ----------------------------------------------------------------------------------------------
# neural baselines


class BiRNNEncoder(nn.Module):
    """Embedding + bidirectional LSTM/GRU over packed sequences: one ``2 * hidden_size`` vector per token.

    ``forward(input_ids [B, T], attention_mask [B, T]) -> [B, T, output_size]`` with zeros at padding.
    Padding is skipped (packed sequences), so the backward direction starts at each row's last real token.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = EMBED_DIM,
        hidden_size: int = 256,
        cell: str = "lstm",
        num_layers: int = 1,
        dropout: float = 0.0,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ModelError(f"rnn cell must be 'lstm' or 'gru', not {cell!r}")
        self.pad_id = pad_id
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.embed_dropout = nn.Dropout(dropout)
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(
            embed_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    @property
    def output_size(self) -> int:
        """Width of each per-token output (both directions concatenated)."""
        return 2 * self.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-token states ``[batch, time, output_size]``."""
        if attention_mask is None:
            attention_mask = (input_ids != self.pad_id).long()
        width = input_ids.shape[1]
        lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()
        x = self.embed_dropout(self.embedding(input_ids))
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=width)
        return out


class BiRNNModel(Savable):
    """Shared body of the BiLSTM/GRU baselines: `BiRNNEncoder`, dropout and a linear head.

    The head reads ``head_inputs`` encoder outputs side by side (2 for the classifier's max + mean
    pooling, 1 for the tagger's per-token states); subclasses define ``forward``.
    """

    head_inputs = 1

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        embed_dim: int = EMBED_DIM,
        hidden_size: int = 256,
        cell: str = "lstm",
        dropout: float = 0.3,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.architecture = {
            "vocab_size": vocab_size,
            "num_labels": num_labels,
            "embed_dim": embed_dim,
            "hidden_size": hidden_size,
            "cell": cell,
            "dropout": dropout,
            "pad_id": pad_id,
        }
        self.encoder = BiRNNEncoder(vocab_size, embed_dim, hidden_size, cell, 1, dropout, pad_id)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.head_inputs * self.encoder.output_size, num_labels)

    def get_input_embeddings(self) -> nn.Embedding:
        """The word-embedding table (same accessor as Hugging Face models)."""
        return self.encoder.embedding


class BiRNNClassifier(BiRNNModel):
    """BiLSTM/GRU text classifier: the encoder's states pooled by masked max and mean, then a linear layer."""

    head_inputs = 2

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> ClassifierOutput:
        """Logits ``[batch, num_labels]``; ``token_type_ids`` is accepted and ignored."""
        if attention_mask is None:
            attention_mask = (input_ids != self.encoder.pad_id).long()
        states = self.encoder(input_ids, attention_mask)
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        maxed = states.masked_fill(mask == 0, -1e4).max(dim=1).values
        return ClassifierOutput(self.classifier(self.dropout(torch.cat([maxed, mean], dim=-1))))


class TextCNN(Savable):
    """Kim (2014) CNN for sentence classification: parallel 1-D convolutions, max-over-time pooling."""

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        embed_dim: int = EMBED_DIM,
        num_filters: int = 256,
        kernel_sizes: Sequence[int] = (3, 4, 5),
        dropout: float = 0.5,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.architecture = {
            "vocab_size": vocab_size,
            "num_labels": num_labels,
            "embed_dim": embed_dim,
            "num_filters": num_filters,
            "kernel_sizes": list(kernel_sizes),
            "dropout": dropout,
            "pad_id": pad_id,
        }
        self.pad_id = pad_id
        self.kernel_sizes = list(kernel_sizes)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, num_filters, k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(num_filters * len(self.kernel_sizes), num_labels)

    def get_input_embeddings(self) -> nn.Embedding:
        """The word-embedding table (same accessor as Hugging Face models)."""
        return self.embedding

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> ClassifierOutput:
        """Logits ``[batch, num_labels]``; windows that start in the padding are masked out of the max."""
        if attention_mask is None:
            attention_mask = (input_ids != self.pad_id).long()
        width = max(input_ids.shape[1], max(self.kernel_sizes))
        if input_ids.shape[1] < width:  # short batches: pad so the widest kernel fits once
            extra = width - input_ids.shape[1]
            input_ids = nn.functional.pad(input_ids, (0, extra), value=self.pad_id)
            attention_mask = nn.functional.pad(attention_mask, (0, extra), value=0)
        lengths = attention_mask.sum(dim=1, keepdim=True)  # [B, 1]
        x = self.embedding(input_ids).transpose(1, 2)  # [B, E, T]
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            h = torch.relu(conv(x))  # [B, F, T - k + 1]
            pos = torch.arange(h.shape[-1], device=h.device).unsqueeze(0)  # [1, T']
            valid = pos < (lengths - k + 1).clamp(min=1)  # a row shorter than k keeps its first window
            pooled.append(h.masked_fill(~valid.unsqueeze(1), -1e4).max(dim=-1).values)
        return ClassifierOutput(self.classifier(self.dropout(torch.cat(pooled, dim=-1))))


class BiRNNTagger(BiRNNModel):
    """BiLSTM/GRU tagger: `BiRNNEncoder` states, dropout and a linear layer per token."""

    head_inputs = 1

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> ClassifierOutput:
        """Logits ``[batch, time, num_labels]``; ``token_type_ids`` is accepted and ignored."""
        return ClassifierOutput(self.classifier(self.dropout(self.encoder(input_ids, attention_mask))))


_NEURAL: dict[str, type[Savable]] = {"BiRNNClassifier": BiRNNClassifier, "TextCNN": TextCNN, "BiRNNTagger": BiRNNTagger}


# ----------------------------------------------------------------------------------------------
# TF-IDF + logistic regression

TFIDF_SKOPS = "tfidf.skops"
TFIDF_VOCAB = "tfidf_vocabulary.json"
TFIDF_JOBLIB = "tfidf.joblib"


class TfidfClassifier:
    """TF-IDF word 1–2-grams + char_wb 2–5-grams into (one-vs-rest for multi-label) logistic regression.

    The strong linear baseline of text classification (e.g. 91.3% on banking77); scikit-learn estimator
    shape: ``fit(texts, y)`` returns self and the fitted pipeline is ``pipeline_``.

    The vocabularies are capped (``max_word_features``, ``max_char_features``: the most frequent n-grams).
    Uncapped, char 2–5-grams of 5,861 Chinese reviews of ≥ 60 characters gave 1.47M features and a run of
    6.9 GB peak RSS; capped at 50k/200k the same run fits in 0.7 GB and scored 92.7% against 91.3% test
    accuracy (docs/baselines.md).
    """

    def __init__(
        self,
        C: float = 10.0,
        max_iter: int = 1000,
        multi_label: bool = False,
        min_df: int = 1,
        seed: int = 0,
        max_word_features: int | None = 50_000,
        max_char_features: int | None = 200_000,
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.multi_label = multi_label
        self.min_df = min_df
        self.seed = seed
        self.max_word_features = max_word_features
        self.max_char_features = max_char_features

    def _features(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        common = {"min_df": self.min_df, "sublinear_tf": True, "dtype": np.float32}
        return FeatureUnion(
            [
                ("word", TfidfVectorizer(ngram_range=(1, 2), max_features=self.max_word_features, **common)),
                (
                    "char",
                    TfidfVectorizer(
                        analyzer="char_wb", ngram_range=(2, 5), max_features=self.max_char_features, **common
                    ),
                ),
            ]
        )

    def _classifier(self) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        clf: Any = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
        return OneVsRestClassifier(clf) if self.multi_label else clf

    def fit(self, texts: Sequence[str], y: np.ndarray, progress: bool = False) -> TfidfClassifier:
        """Fit vectorisers and classifier; ``y`` holds label ids (or multi-hot rows for multi-label).

        scikit-learn reports no progress from inside a fit, so the bar counts the three stages (word
        n-grams, char n-grams, logistic regression) with the time each took.
        """
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.pipeline import Pipeline
        from tqdm.auto import tqdm

        texts = list(texts)
        features = self._features()
        parts = []
        with tqdm(total=3, desc="tf-idf + logistic regression", unit="stage", disable=not progress) as bar:
            for name, vec in features.transformer_list:
                bar.set_postfix_str(f"{name} n-grams")
                parts.append(vec.fit_transform(texts))
                vec.stop_words_ = None  # the n-grams cut by max_features: large, and only for introspection
                bar.update(1)
            from scipy.sparse import hstack

            bar.set_postfix_str("logistic regression")
            clf = self._classifier()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
                clf.fit(hstack(parts, format="csr"), y.astype(int) if self.multi_label else y)
            bar.update(1)
        self.pipeline_ = Pipeline([("features", features), ("clf", clf)])
        self.num_labels_ = int(y.shape[1]) if self.multi_label else int(y.max()) + 1
        return self

    @property
    def n_parameters_(self) -> int:
        """Learnt weights: coefficients and intercepts of the logistic regression(s)."""
        clf = self.pipeline_.named_steps["clf"]
        estimators = clf.estimators_ if self.multi_label else [clf]
        return int(
            sum(getattr(e, "coef_", np.zeros(0)).size + np.size(getattr(e, "intercept_", 0)) for e in estimators)
        )

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities ``[n, num_labels]`` in label-id order (float32)."""
        probs = np.asarray(self.pipeline_.predict_proba(list(texts)), dtype=np.float32)
        classes = self.pipeline_.named_steps["clf"].classes_
        if self.multi_label or probs.shape[1] == self.num_labels_:
            return probs
        # a label absent from the training rows has no column: give it probability 0
        full = np.zeros((len(probs), self.num_labels_), dtype=np.float32)
        full[:, np.asarray(classes, dtype=int)] = probs
        return full

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """Logits ``[n, num_labels]`` in label-id order: the logistic regression's scores, whose softmax is
        `predict_proba` (a binary model's one score d becomes [0, d]; a label absent from training gets -30)."""
        scores = np.asarray(self.pipeline_.decision_function(list(texts)), dtype=np.float32)
        if scores.ndim == 1:
            scores = np.stack([np.zeros_like(scores), scores], axis=1)
        classes = np.asarray(self.pipeline_.named_steps["clf"].classes_, dtype=int)
        if self.multi_label or scores.shape[1] == self.num_labels_:
            return scores
        full = np.full((len(scores), self.num_labels_), -30.0, dtype=np.float32)
        full[:, classes] = scores
        return full

    def eval(self) -> TfidfClassifier:
        """No-op, so ``load_run`` can treat this like a torch module."""
        return self

    def save_pretrained(self, path: str | Path, safe_serialization: bool = True) -> None:
        """Save the fitted pipeline with skops (no pickle: loading runs no code), else joblib (pickle)."""
        path = Path(path)
        state: dict[str, Any] = {
            "C": self.C,
            "max_iter": self.max_iter,
            "multi_label": self.multi_label,
            "min_df": self.min_df,
        }
        state["max_word_features"] = self.max_word_features
        state["max_char_features"] = self.max_char_features
        write_json(path / ARCH_FILE, {"class": type(self).__name__, "kwargs": state, "num_labels": self.num_labels_})
        try:
            import skops.io as sio
        except ImportError:
            sio = None
        if sio is not None and safe_serialization:
            # skops writes a node per dict entry: for a vocabulary of 10^5-10^6 n-grams that took minutes and
            # gigabytes, so the vocabularies go into a plain JSON list (term order = column index) beside it.
            vectorizers = self.pipeline_.named_steps["features"].transformer_list
            vocabularies = {name: vec.vocabulary_ for name, vec in vectorizers}
            try:
                for _, vec in vectorizers:
                    vec.vocabulary_ = {}
                with atomic_path(path / TFIDF_SKOPS) as tmp:
                    sio.dump(self.pipeline_, tmp)
            finally:
                for name, vec in vectorizers:
                    vec.vocabulary_ = vocabularies[name]
            terms = {name: sorted(v, key=v.__getitem__) for name, v in vocabularies.items()}
            write_json(path / TFIDF_VOCAB, terms)
        else:
            import joblib

            with atomic_path(path / TFIDF_JOBLIB) as tmp:
                joblib.dump(self.pipeline_, tmp)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> TfidfClassifier:
        """Load a saved pipeline; the skops file is checked against the types this class itself saves."""
        path = Path(path)
        arch = json.loads((path / ARCH_FILE).read_text(encoding="utf-8"))
        obj = cls(**arch["kwargs"])
        obj.num_labels_ = int(arch["num_labels"])
        if (path / TFIDF_SKOPS).is_file():
            try:
                import skops.io as sio
            except ImportError:
                raise ModelError(f"'{path}' holds a skops file; install skops (pip install skops)") from None
            untrusted = set(sio.get_untrusted_types(file=path / TFIDF_SKOPS))
            unexpected = untrusted - SKOPS_TRUSTED
            if unexpected:
                raise ModelError(f"'{path / TFIDF_SKOPS}' holds unexpected types {sorted(unexpected)}; not loading it")
            obj.pipeline_ = sio.load(path / TFIDF_SKOPS, trusted=sorted(untrusted))
            vocab_file = path / TFIDF_VOCAB
            if vocab_file.is_file():  # runs saved before the vocabularies moved out keep them inside
                terms = json.loads(vocab_file.read_text(encoding="utf-8"))
                for name, vec in obj.pipeline_.named_steps["features"].transformer_list:
                    vec.vocabulary_ = {t: i for i, t in enumerate(terms[name])}
        elif (path / TFIDF_JOBLIB).is_file():
            import joblib

            obj.pipeline_ = joblib.load(path / TFIDF_JOBLIB)  # pickle: only load run folders you trust
        else:
            raise ModelError(f"'{path}' has no {TFIDF_SKOPS} or {TFIDF_JOBLIB}; the run folder is incomplete")
        return obj


# the only type outside skops' default trust list that a fitted TfidfClassifier holds (multi-label runs
# with a label that is always or never present); anything else in a file means it was not written here
SKOPS_TRUSTED = {"sklearn.multiclass._ConstantPredictor"}


def load_baseline(model_dir: Path, meta: dict[str, Any]) -> tuple[Any, Any]:
    """Model and tokenizer of a finished run trained from scratch: rnn/textcnn/tfidf classifier or BiLSTM tagger."""
    if meta.get("model_type") == "tfidf":
        return TfidfClassifier.from_pretrained(model_dir), NullTokenizer()
    return load_savable(model_dir, _NEURAL), WordTokenizer.from_pretrained(model_dir)


def build_text_baseline(
    model_type: str,
    vocab_size: int,
    num_labels: int,
    hidden_size: int,
    rnn_cell: str = "lstm",
    dropout: float | None = None,
    pad_id: int = 0,
) -> Savable:
    """The rnn or textcnn classifier for a vocabulary of ``vocab_size`` tokens.

    ``hidden_size`` (``model.hidden_size``) is the width of the sentence features: the two RNN directions
    get half each, and each of the three TextCNN kernel widths gets half as many filters (Kim used 100).
    """
    half = max(4, hidden_size // 2)
    if model_type == "rnn":
        return BiRNNClassifier(
            vocab_size,
            num_labels,
            EMBED_DIM,
            half,
            rnn_cell,
            0.3 if dropout is None else dropout,
            pad_id,
        )
    if model_type == "textcnn":
        return TextCNN(
            vocab_size,
            num_labels,
            EMBED_DIM,
            half,
            (3, 4, 5),
            0.5 if dropout is None else dropout,
            pad_id,
        )
    raise ModelError(f"no neural text baseline called {model_type!r}; use rnn or textcnn")
