"""In-domain masked-LM adaptation of an encoder (task-adaptive pretraining, Gururangan et al. 2020).

After vocabulary extension the new Chinese rows of the embedding table start with no meaning; a few hundred
masked-LM steps on the run's own unlabelled texts teach them some before the classifier needs them. The MLM
head is transformers' (`AutoModelForMaskedLM`) and so is the masking (`DataCollatorForLanguageModeling` with
``whole_word_mask``); the result is written as an ordinary model folder (encoder + extended tokenizer) that
any recipe loads as its base model.
"""

from __future__ import annotations

import functools
import math
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import torch

from growthcurve.atomic import swap_in_dir, write_json
from growthcurve.errors import DataError, DivergedError

# CJK ideographs (BERT's `_is_chinese_char` ranges) and CJK/full-width punctuation: each is its own word.
_CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f"
_WORD = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")

# sentence-transformers files that describe how the encoder pools; copied so PEFT's pooler default still applies
_SIDE_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling")

P = ParamSpec("P")
R = TypeVar("R")

MLM_PROBABILITY = 0.15
EVAL_TEXTS = 256  # texts in the fixed masked sample the loss before/after is measured on


def cjk_words(text: str) -> list[str]:
    """Split ``text`` into the words whole-word masking works on: every CJK character alone, other runs at spaces.

    transformers' collator finds word boundaries from offset gaps, so a run of Chinese characters (no spaces)
    would be one "word" and masked whole; pre-splitting into words (``is_split_into_words``) gives each
    character its own offsets and thus whole-character masking, with the same tokens as plain tokenisation.
    """
    return _WORD.findall(text)


@dataclass
class AdaptResult:
    """What a masked-LM adaptation did and cost."""

    steps: int
    seconds: float
    loss_before: float  # masked-LM loss on a fixed masked sample, before and after
    loss_after: float
    texts: int
    stopped_by: str  # "steps" | "minutes"
    path: str | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers for metrics.json / run.json."""
        return {
            "method": "mlm",
            "steps": self.steps,
            "seconds": round(self.seconds, 2),
            "mlm_loss_before": round(self.loss_before, 4),
            "mlm_loss_after": round(self.loss_after, 4),
            "texts": self.texts,
            "stopped_by": self.stopped_by,
        }

    def message(self) -> str:
        """One line for the console."""
        return (
            f"adaptation: {self.steps} masked-LM steps on {self.texts} texts in {self.seconds:.0f} s "
            f"(stopped by {self.stopped_by}); masked-LM loss {self.loss_before:.3f} -> {self.loss_after:.3f}"
        )


def _encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[dict[str, list]]:
    enc = tokenizer(
        [cjk_words(t) for t in texts],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    keys = [
        k
        for k in ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask", "offset_mapping")
        if k in enc
    ]
    return [
        {k: enc[k][i] for k in keys} for i in range(len(texts)) if sum(1 - m for m in enc["special_tokens_mask"][i])
    ]


def _pad(rows: list[dict[str, list]], pad_id: int) -> list[dict[str, list]]:
    """Pad a batch to one length; the collator's own padding does not pad ``offset_mapping``."""
    n = max(len(r["input_ids"]) for r in rows)
    fill = {"input_ids": pad_id, "token_type_ids": 0, "attention_mask": 0, "special_tokens_mask": 1}
    out = []
    for r in rows:
        k = n - len(r["input_ids"])
        row = {key: list(v) + [fill[key]] * k for key, v in r.items() if key != "offset_mapping"}
        row["offset_mapping"] = [tuple(o) for o in r["offset_mapping"]] + [(0, 0)] * k
        out.append(row)
    return out


def _plan(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Length-bucketed random batches (shuffle, sort within chunks of 50 batches): less padding per step."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches = []
    for s in range(0, len(order), chunk):
        part = order[s : s + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def _mlm_loss(model: Any, batch: dict[str, torch.Tensor], bf16: bool) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the masked positions and their count.

    The vocabulary projection is applied to the masked positions only (15% of tokens): Hugging Face's
    forward projects every position, which on a CPU costs more than the six encoder layers of MiniLM.
    """
    labels = batch["labels"]
    where = labels != -100
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    head = getattr(model, "cls", None) or getattr(model, "lm_head", None)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if head is not None:
            hidden = model.base_model(**inputs).last_hidden_state
            logits = head(hidden[where])
        else:  # other MLM heads: the library's full forward
            logits = model(**inputs).logits[where]
    loss = torch.nn.functional.cross_entropy(logits.float(), labels[where])
    return loss, int(where.sum())


def masked_lm_loss(model: Any, batches: list[dict[str, torch.Tensor]], bf16: bool = False) -> float:
    """Mean masked-LM loss over pre-masked batches (each from the collator, so the masks stay fixed)."""
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            loss, count = _mlm_loss(model, batch, bf16)
            total += float(loss) * count
            n += count
    return total / max(n, 1)


def _keep_rng(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` on a fork of torch's global RNG, so what follows draws what it would have drawn anyway."""

    @functools.wraps(fn)
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        with torch.random.fork_rng(devices=[]):
            return fn(*args, **kwargs)

    return inner


@_keep_rng
def adapt_mlm(
    model_path: str,
    tokenizer: Any,
    texts: Sequence[str],
    out_dir: str | Path | None = None,
    *,
    steps: int | None = 300,
    minutes: float | None = None,
    batch_size: int = 32,
    learning_rate: float = 2e-4,
    max_length: int = 128,
    seed: int = 0,
    bf16: bool = False,
    resize: Callable[[Any], None] | None = None,
    progress: bool = True,
) -> tuple[Any, AdaptResult]:
    """Train ``model_path``'s encoder with a masked-LM head on ``texts`` for ``steps`` steps or ``minutes``
    (whichever ends first); return the adapted encoder (``AutoModel``, pooler kept) and what it cost.

    ``tokenizer`` may already be extended: ``resize(model)`` (e.g. `VocabExtension.resize`) grows and
    initialises the new embedding rows before training. With ``out_dir`` the encoder and the tokenizer are
    written there as a model folder (atomically), loadable as a base model. torch's global RNG is left as
    it was (the masks and the head's initialisation draw from a seeded fork of it).
    """
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoModelForMaskedLM, DataCollatorForLanguageModeling

    from growthcurve.models.hf import load_pretrained

    if steps is None and minutes is None:
        raise DataError("masked-LM adaptation needs a budget: model.adapt_steps or model.adapt_minutes")
    if tokenizer.mask_token is None:
        raise DataError("masked-LM adaptation needs a tokenizer with a mask token (BERT-style encoders)")
    rows = _encode(tokenizer, texts, max_length)
    if not rows:
        raise DataError("masked-LM adaptation got no non-empty texts")
    torch.manual_seed(seed)
    mlm = load_pretrained(AutoModelForMaskedLM, model_path)
    if resize is not None:
        resize(mlm)
    if mlm.get_input_embeddings().weight.shape[0] < len(tokenizer):
        mlm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    # No `seed=` for the collator: its own generator refuses to run in any process not named MainProcess
    # (a spawned worker, `accelerate launch`); the masks come from torch's RNG, seeded and forked here.
    collator = DataCollatorForLanguageModeling(
        tokenizer,
        mlm_probability=MLM_PROBABILITY,
        whole_word_mask=True,
        mask_replace_prob=1.0,  # the only choice transformers offers with whole-word masking
        random_replace_prob=0.0,
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rng = np.random.default_rng(seed)
    lengths = np.array([len(r["input_ids"]) for r in rows])

    def batch_of(idx: np.ndarray) -> dict[str, torch.Tensor]:
        return dict(collator(_pad([rows[i] for i in idx], pad_id)))

    # a fixed masked sample so "before" and "after" see the same masks
    sample = np.sort(rng.permutation(len(rows))[:EVAL_TEXTS])
    torch.manual_seed(seed + 1)
    eval_batches = [batch_of(sample[s : s + batch_size]) for s in range(0, len(sample), batch_size)]
    before = masked_lm_loss(mlm, eval_batches, bf16)
    torch.manual_seed(seed)

    opt = torch.optim.AdamW(
        [p for p in mlm.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.01, fused=True
    )
    from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

    if steps is not None:
        warm = max(1, int(0.06 * steps))
        sched = get_linear_schedule_with_warmup(opt, warm, steps)
    else:
        sched = get_constant_schedule_with_warmup(opt, 20)
    deadline = time.perf_counter() + minutes * 60 if minutes is not None else math.inf
    total = steps if steps is not None else None
    bar = tqdm(total=total, desc="adapt (masked LM)", unit="step", disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    plan: list[np.ndarray] = []
    done, stopped_by, running = 0, "steps", 0.0
    mlm.train()
    while steps is None or done < steps:
        if time.perf_counter() >= deadline:
            stopped_by = "minutes"
            break
        if not plan:
            plan = _plan(lengths, batch_size, rng)
        batch = batch_of(plan.pop())
        loss, _ = _mlm_loss(mlm, batch, bf16)
        value = float(loss.detach())
        if not math.isfinite(value):  # before the update: no nan weight reaches the adapted encoder
            bar.close()
            raise DivergedError(
                f"masked-LM adaptation diverged: the loss is {value} at step {done + 1}; nothing was saved. Lower "
                f"the learning rate (now {learning_rate:g}: `adapt --lr`, or train.learning_rate in a finetune)"
            )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(mlm.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        done += 1
        running = value if done == 1 else 0.9 * running + 0.1 * value
        bar.update(1)
        if done % 10 == 0:
            bar.set_postfix(loss=f"{running:.3f}")
    bar.close()
    seconds = time.perf_counter() - t0
    after = masked_lm_loss(mlm, eval_batches, bf16)

    # the encoder with its pooler (the MLM model has none) carrying the adapted weights
    encoder = load_pretrained(AutoModel, model_path)
    encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    missing, unexpected = encoder.load_state_dict(mlm.base_model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("pooler.") for k in missing):
        raise DataError(f"adapted weights do not fit the encoder of '{model_path}' ({(unexpected or missing)[:3]})")
    result = AdaptResult(done, seconds, before, after, len(rows), stopped_by)
    if out_dir is not None:
        result.path = str(save_adapted(encoder, tokenizer, model_path, out_dir, result))
    return encoder, result


def save_adapted(encoder: Any, tokenizer: Any, model_path: str, out_dir: str | Path, result: AdaptResult) -> Path:
    """Write the adapted encoder, its tokenizer and the base's pooling description as one model folder,
    built next to ``out_dir`` and swapped in by rename (a half-written folder never looks like a model)."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        encoder.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for name in _SIDE_FILES:
            src = Path(model_path) / name
            if src.is_dir():
                shutil.copytree(src, tmp / name)
            elif src.is_file():
                shutil.copy2(src, tmp / name)
        write_json(tmp / "adaptation.json", {"base_model": model_path, **result.summary()})
        swap_in_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------------------------
# As a finetune config asks (model.adapt / adapt_steps / adapt_minutes / adapt_texts)

AUTO_MIN_ADDED = 500  # model.adapt=auto adapts when vocabulary extension added at least this many characters
DEFAULT_STEPS = 200
DEFAULT_MINUTES = 5.0


def read_texts(path: str | Path, column: str = "text") -> list[str]:
    """Unlabelled texts from ``.txt`` (one a line), ``.csv``/``.tsv`` or ``.jsonl`` (``column``), or ``.conll``."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"model.adapt_texts: '{p}' does not exist")
    suffix = p.suffix.lower()
    if suffix in (".conll", ".bio", ".iob"):
        from growthcurve.data.tokens import read_conll

        examples, _ = read_conll(p)
        return ["".join(t) if examples.char_level else " ".join(t) for t in examples.tokens]
    if suffix in (".csv", ".tsv", ".jsonl", ".json"):
        import pandas as pd

        try:
            if suffix == ".csv":
                df = pd.read_csv(p, dtype=str, keep_default_na=False)
            elif suffix == ".tsv":
                df = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)
            else:
                df = pd.read_json(p, lines=suffix == ".jsonl", dtype=False)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"model.adapt_texts: cannot read '{p}': {exc}") from None
        if column not in df.columns:
            raise DataError(f"model.adapt_texts: '{p}' has no column '{column}' (columns: {', '.join(df.columns)})")
        return [str(t) for t in df[column] if str(t).strip()]
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"model.adapt_texts: '{p}' is not UTF-8 text") from None
    return [line for line in lines if line.strip()]


def wants_adaptation(cfg: Any, added: int) -> bool:
    """Whether ``cfg`` asks for masked-LM adaptation, given how many characters vocabulary extension added.

    ``auto`` adapts when extension added at least `AUTO_MIN_ADDED` characters (the real Chinese corpora add
    2,000-4,000 and learn slowly without it; the bundled intents add ~300 and train well as they are).
    Parameter-efficient methods freeze the encoder, so adaptation is for ``method=full`` only.
    """
    mode = cfg.model.adapt
    if mode == "none":
        return False
    if cfg.method != "full":
        if mode == "mlm":
            from growthcurve.errors import ConfigError

            raise ConfigError(
                f"model.adapt=mlm needs method=full (a {cfg.method} run reloads its base model by path, and the "
                "adapted base of a run lives in a temporary folder); "
                "adapt first with `growthcurve adapt` and pass the folder as model.name_or_path"
            )
        return False
    return mode == "mlm" or added >= AUTO_MIN_ADDED


@contextmanager
def adapted_base(
    cfg: Any,
    model_path: str,
    tokenizer: Any,
    texts: Sequence[str],
    resize: Callable[[Any], None] | None,
    added: int,
    bf16: bool,
    progress: bool = True,
    resume: bool = False,
    echo: Callable[[str], None] | None = None,
) -> Iterator[tuple[str, AdaptResult | None]]:
    """Yield the base model folder a recipe builds its classifier from, and what adaptation did (or None).

    With adaptation on, the adapted encoder and the extended tokenizer live in a temporary folder for the
    duration of the block (the run's ``model/`` folder later holds the whole fine-tuned model). A resumed
    run skips it: its checkpoint already holds every weight.
    """
    if resume or not wants_adaptation(cfg, added):
        yield model_path, None
        return
    extra = read_texts(cfg.model.adapt_texts, cfg.data.text_column) if cfg.model.adapt_texts else []
    steps, minutes = cfg.model.adapt_steps, cfg.model.adapt_minutes
    if steps is None and minutes is None:
        steps, minutes = DEFAULT_STEPS, DEFAULT_MINUTES
    with tempfile.TemporaryDirectory(prefix="growthcurve-adapt-") as tmp:
        _, result = adapt_mlm(
            model_path,
            tokenizer,
            list(texts) + extra,
            Path(tmp) / "adapted",
            steps=steps,
            minutes=minutes,
            batch_size=cfg.train.batch_size,
            learning_rate=cfg.train.learning_rate,
            max_length=cfg.model.max_length,
            seed=cfg.train.seed,
            bf16=bf16,
            resize=resize,
            progress=progress,
        )
        if echo is not None:
            echo(result.message())
        assert result.path is not None
        yield result.path, result
