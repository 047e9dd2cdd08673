"""`recommend fit` top to bottom (setup -> fit -> evaluate -> save), `recommend eval`, and the loaded run.

The run folder is built in a hidden sibling folder and renamed into place at the end, so a crash
never leaves a half run, and a finished run is never overwritten unless asked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import yaml

from growthcurve.apps.recommender import metrics as M
from growthcurve.apps.recommender.baselines import (
    ALSRecommender,
    BPRRecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    load_als,
)
from growthcurve.apps.recommender.config import RecommenderConfig
from growthcurve.apps.recommender.data import (
    Catalogue,
    Split,
    leave_last_out,
    read_interactions,
    read_items,
    user_item_matrix,
)
from growthcurve.apps.recommender.model import BlendedScorer, TextTwoTower, blend_scores
from growthcurve.apps.recommender.synthetic import write_synthetic
from growthcurve.atomic import swap_in_dir, write_json, write_text
from growthcurve.config import config_yaml
from growthcurve.errors import ConfigError, DataError, ModelError

RUN_FILE = "recommender.json"
MODEL_DIR = "model"
Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass
class EvalResult:
    """Metrics of every model on the same leave-last-out split, and what validation chose."""

    rows: list[dict[str, Any]]
    blend_weight: float
    als_params: dict[str, Any] | None
    counts: dict[str, int]
    random_hr: dict[str, float | None]
    val_curve: list[dict[str, float]] = field(default_factory=list)

    def row(self, name: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["model"] == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "blend_weight": self.blend_weight,
            "als_params": self.als_params,
            "counts": self.counts,
            "random_hr": self.random_hr,
            "val_blend_curve": self.val_curve,
        }


def load_data(cfg: RecommenderConfig, data_dir: Path) -> tuple[pd.DataFrame, Catalogue, list[str], dict[str, str]]:
    """Read (or, with no files configured, generate into ``data_dir``) the interactions and catalogue."""
    d = cfg.data
    if d.interactions is None:
        inter_path, items_path = write_synthetic(data_dir, seed=d.synthetic_seed, n_users=d.synthetic_users)
        cols = {"user": "user_id", "item": "item_id", "rating": "rating", "ts": "timestamp"}
        catalogue, w1 = read_items(items_path, "item_id", "title", ["description", "tags"])
        inter, w2 = read_interactions(inter_path, catalogue, "user_id", "item_id", "rating", "timestamp")
        return inter, catalogue, w1 + w2, {"interactions": str(inter_path), "items": str(items_path), **cols}
    assert d.items is not None  # the config sets both files or neither (RecDataConfig._both_or_none)
    catalogue, w1 = read_items(d.items, d.item_id_column, d.title_column, d.text_columns)
    inter, w2 = read_interactions(
        d.interactions,
        catalogue,
        d.user_column,
        d.item_column,
        d.rating_column,
        d.timestamp_column,
        d.timestamp_format,
        d.min_rating,
    )
    return inter, catalogue, w1 + w2, {"interactions": d.interactions, "items": d.items}


def make_text_model(cfg: RecommenderConfig, progress: bool) -> TextTwoTower:
    t, m = cfg.train, cfg.model
    return TextTwoTower(
        model_name_or_path=m.name_or_path,
        max_length=m.max_length,
        user_max_length=m.user_max_length,
        history_items=m.history_items,
        epochs=t.epochs,
        batch_size=t.batch_size,
        learning_rate=t.learning_rate,
        temperature=t.temperature,
        examples_per_user=t.examples_per_user,
        logq_correction=t.logq_correction,
        precision=t.precision,
        seed=t.seed,
        progress=progress,
    )


def index_histories(df: pd.DataFrame, catalogue: Catalogue) -> dict[str, list[int]]:
    """Each user's items (catalogue indices) in time order."""
    df = df.sort_values(["user", "ts", "row"], kind="stable")
    return {u: [catalogue.index[i] for i in g["item"]] for u, g in df.groupby("user", sort=True)}


def _rank_rows(
    name: str, scores: np.ndarray, targets: np.ndarray, exclude: np.ndarray, k: int, n_items: int
) -> dict[str, Any]:
    ranks = M.ranks_of_targets(scores, targets, exclude)
    tops = M.top_k(scores, k, exclude)
    return {
        "model": name,
        f"hr@{k}": M.hit_rate_at_k(ranks, k),
        f"ndcg@{k}": M.ndcg_at_k(ranks, k),
        f"coverage@{k}": M.catalogue_coverage(tops, n_items),
    }


def evaluate_recommenders(
    split: Split,
    catalogue: Catalogue,
    text_model: TextTwoTower | None,
    cfg: RecommenderConfig,
    log: Log = _quiet,
    item_embeddings: np.ndarray | None = None,
) -> EvalResult:
    """Every model and baseline on one leave-last-out split: tune on validation, report on test.

    Models are fitted on ``split.train`` only. Validation ranks each user's second-to-last item from the
    training history; the test ranks the last item from training + validation history, excluding every
    item the user had before it. Users whose test item is cold are scored apart (``cold_hr``).
    """
    k = cfg.eval.k
    n_items = len(catalogue)
    users = sorted(set(split.train["user"]) | set(split.val["user"]) | set(split.test["user"]))
    uidx = {u: i for i, u in enumerate(users)}
    x_train = user_item_matrix(split.train, uidx, catalogue)
    x_hist = user_item_matrix(pd.concat([split.train, split.val]), uidx, catalogue)
    x_seen = user_item_matrix(split.seen, uidx, catalogue)

    val = split.val.sort_values("user")
    if len(val) == 0:
        raise DataError(
            "no user has a validation item (the one before the latest) seen in training; the blend weight and "
            "ALS size are tuned on it: give users at least 3 interactions, or lower eval.cold_items_fraction"
        )
    v_users = val["user"].map(uidx).to_numpy()
    v_targets = val["item"].map(catalogue.index).to_numpy()
    v_excl = x_train[v_users].toarray() > 0
    test = split.test.sort_values("user")
    cold_mask = test["item"].isin(split.cold_items).to_numpy()
    groups = {"warm": test[~cold_mask], "cold": test[cold_mask]}
    if len(groups["warm"]) == 0:
        raise DataError("no user has a held-out test item seen in training; give users at least 3 interactions")
    tsets: dict[str, dict[str, Any]] = {}
    for g, df in groups.items():
        ids = df["user"].map(uidx).to_numpy()
        tsets[g] = {
            "users": ids,
            "targets": df["item"].map(catalogue.index).to_numpy(),
            "exclude": x_seen[ids].toarray() > 0,
            "history": x_hist[ids],
        }
    counts = {
        "users": len(users),
        "items": n_items,
        "train_interactions": len(split.train),
        "val_users": len(val),
        "test_users_warm": len(groups["warm"]),
        "test_users_cold": len(groups["cold"]),
        "cold_items": len(split.cold_items),
    }
    rows: list[dict[str, Any]] = []

    def add(name: str, scorer: Callable[[dict[str, Any]], np.ndarray]) -> None:
        row = _rank_rows(name, scorer(tsets["warm"]), tsets["warm"]["targets"], tsets["warm"]["exclude"], k, n_items)
        row[f"cold_hr@{k}"] = None
        if len(groups["cold"]):
            cold = tsets["cold"]
            row[f"cold_hr@{k}"] = M.hit_rate_at_k(M.ranks_of_targets(scorer(cold), cold["targets"], cold["exclude"]), k)
        rows.append(row)
        log(f"{name}: NDCG@{k} {row[f'ndcg@{k}']:.4f}, HR@{k} {row[f'hr@{k}']:.4f}")

    threads = cfg.train.threads or 0
    # ALS is both a baseline and the blend's collaborative signal: tune its size on validation first.
    als: ALSRecommender | None = None
    als_params: dict[str, Any] | None = None
    need_als = "als" in cfg.eval.baselines or cfg.blend.collaborative == "als"
    if need_als:
        best = -1.0
        for f in cfg.blend.als_factors:
            for reg in cfg.blend.als_regularization:
                cand = ALSRecommender(
                    f, reg, iterations=cfg.blend.als_iterations, seed=cfg.train.seed, num_threads=threads
                ).fit(x_train)
                r = M.ranks_of_targets(cand.score(v_users, x_train[v_users]), v_targets, v_excl)
                ndcg = M.ndcg_at_k(r, k)
                if ndcg > best:
                    best, als, als_params = ndcg, cand, {"factors": f, "regularization": reg, "val_ndcg": ndcg}
        log(f"ALS chosen on validation: {als_params}")

    weight = 0.0
    curve: list[dict[str, float]] = []
    if text_model is not None:
        emb = item_embeddings if item_embeddings is not None else text_model.encode_items(catalogue.texts)
        h_train = index_histories(split.train, catalogue)
        h_test = index_histories(pd.concat([split.train, split.val]), catalogue)

        def user_emb(ids: np.ndarray, hist: dict[str, list[int]]) -> np.ndarray:
            return text_model.encode_users([hist.get(users[i], []) for i in ids], catalogue.titles)

        v_text = user_emb(v_users, h_train) @ emb.T
        for g, df in groups.items():
            if len(df):
                tsets[g]["text"] = user_emb(tsets[g]["users"], h_test) @ emb.T
        # items no one interacted with in training: ALS has nothing on them, the blend ranks them by text
        no_interactions = np.asarray(x_train.getnnz(axis=0) == 0).ravel()
        if cfg.blend.collaborative == "als" and als is not None:
            v_als = als.score(v_users, x_train[v_users])
            best = -1.0
            for w in cfg.blend.weights:
                blended = blend_scores(v_text, v_als, w, no_interactions)
                ndcg = M.ndcg_at_k(M.ranks_of_targets(blended, v_targets, v_excl), k)
                curve.append({"weight": w, "val_ndcg": ndcg})
                if ndcg > best + 1e-12:
                    best, weight = ndcg, w
            log(f"blend weight chosen on validation: {weight}")
        add("two-tower text", lambda t: t["text"])
        if weight > 0 and als is not None:
            add(
                f"text + ALS (w={weight:g})",
                lambda t: blend_scores(t["text"], als.score(t["users"], t["history"]), weight, no_interactions),
            )
    if "popularity" in cfg.eval.baselines:
        pop = PopularityRecommender().fit(x_train)
        add("popularity", lambda t: pop.score(t["users"], t["history"]))
    if "itemknn" in cfg.eval.baselines:
        knn = ItemKNNRecommender(cfg.eval.itemknn_neighbours, threads).fit(x_train)
        add("item-kNN", lambda t: knn.score(t["users"], t["history"]))
    if "als" in cfg.eval.baselines and als is not None:
        add("ALS", lambda t: als.score(t["users"], t["history"]))
    if "bpr" in cfg.eval.baselines:
        bpr = BPRRecommender(
            cfg.eval.bpr_factors, iterations=cfg.eval.bpr_iterations, seed=cfg.train.seed, num_threads=threads
        ).fit(x_train)
        add("BPR", lambda t: bpr.score(t["users"], t["history"]))
    random_hr: dict[str, float | None] = {}
    for g in groups:
        ex = tsets[g]["exclude"]
        random_hr[g] = float(np.mean(np.minimum(1.0, k / (n_items - ex.sum(axis=1))))) if len(ex) else None
    return EvalResult(rows, weight, als_params, counts, random_hr, curve)


def _version(cfg: RecommenderConfig) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    digest = hashlib.sha1(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:8]
    return f"{cfg.name}-{stamp}-{digest}"


def fit_run(cfg: RecommenderConfig, overwrite: bool = False, progress: bool = True, log: Log = _quiet) -> Path:
    """Read, split, fine-tune the text model, evaluate it beside the baselines, save the run folder."""
    import torch

    out = Path(cfg.output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        finished = (out / RUN_FILE).is_file()
        raise ConfigError(
            f"'{out}' already holds {'a finished run' if finished else 'files'}; pass --overwrite or set output_dir"
        )
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        inter, catalogue, warnings, sources = load_data(cfg, tmp / "data")
        for w in warnings:
            log(f"[yellow]warning:[/] {w}")
        split = leave_last_out(inter, cfg.eval.cold_items_fraction, cfg.train.seed)
        text = make_text_model(cfg, progress)
        t0 = time.perf_counter()
        if cfg.train.epochs > 0:
            text.fit(index_histories(split.train, catalogue), catalogue.texts, catalogue.titles)
        else:  # zero-shot: the pretrained encoder as it is
            from growthcurve.training.hardware import resolve_precision

            text.encoder_, text.tokenizer_ = _load(cfg.model.name_or_path)
            text.precision_ = resolve_precision(cfg.train.precision, torch.device("cpu"))
        train_seconds = time.perf_counter() - t0
        emb = text.encode_items(catalogue.texts)
        result = evaluate_recommenders(split, catalogue, text, cfg, log, item_embeddings=emb)
        version = _version(cfg)
        meta = {
            "task": "recommendation",
            "method": "two-tower",
            "model_type": "transformer",
            "base_model": cfg.model.name_or_path,
            "multi_label": False,
            "max_length": cfg.model.max_length,
            "user_max_length": cfg.model.user_max_length,
            "history_items": cfg.model.history_items,
            "temperature": cfg.train.temperature,
            "precision": text.precision_,
            "model_version": version,
        }
        text.save(tmp / MODEL_DIR, meta)
        np.save(tmp / "item_embeddings.npy", emb)
        pd.DataFrame({"item": catalogue.ids, "text": catalogue.texts, "title": catalogue.titles}).to_parquet(
            tmp / "items.parquet", index=False
        )
        roles = _roles(inter, split)
        roles.to_parquet(tmp / "interactions.parquet", index=False)
        if result.blend_weight > 0 and result.als_params:
            # The served collaborative part learns from every interaction (seconds); the text model is the one
            # evaluated above.
            users = sorted(inter["user"].unique())
            x_all = user_item_matrix(inter, {u: i for i, u in enumerate(users)}, catalogue)
            als = ALSRecommender(
                result.als_params["factors"],
                result.als_params["regularization"],
                iterations=cfg.blend.als_iterations,
                seed=cfg.train.seed,
            ).fit(x_all)
            als.model_.save(str(tmp / "als.npz"))
        model_name = next((r["model"] for r in result.rows if r["model"].startswith("text + ALS")), "two-tower text")
        chosen = result.row(model_name)
        k = cfg.eval.k
        run_meta = {
            **meta,
            "name": cfg.name,
            "served_model": model_name,
            "blend_weight": result.blend_weight,
            "als_params": result.als_params,
            "cold_items": sorted(split.cold_items),
            "k": k,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sources": sources,
            "train_seconds": round(train_seconds, 2),
        }
        write_json(
            tmp / "metrics.json",
            {
                **result.to_dict(),
                "model": model_name,
                "ndcg": chosen[f"ndcg@{k}"],
                "hr": chosen[f"hr@{k}"],
                "train_seconds": round(train_seconds, 2),
                "warnings": warnings,
                "loss": text.__dict__.get("history_loss_", []),
            },
        )
        write_text(tmp / "config.yaml", config_yaml(cfg))
        write_json(tmp / RUN_FILE, run_meta)  # written last: its presence marks a finished run
        swap_in_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _load(name: str) -> tuple[Any, Any]:
    from growthcurve.apps.recommender.model import load_encoder

    model, tok = load_encoder(name)
    model.eval()
    return model, tok


def _roles(inter: pd.DataFrame, split: Split) -> pd.DataFrame:
    """All interactions with their role: train / val / test / cold (a non-test interaction with a cold item)."""
    key = ["user", "item"]
    df = inter.copy()
    df["role"] = "cold"
    for role, part in (("train", split.train), ("val", split.val), ("test", split.test)):
        m = df.set_index(key).index.isin(part.set_index(key).index)
        df.loc[m, "role"] = role
    return df


def split_from_roles(df: pd.DataFrame, cold_items: list[str]) -> Split:
    """The split a run was evaluated on, rebuilt from ``interactions.parquet``."""
    cols = ["user", "item", "ts", "rating", "row"]
    return Split(
        train=df[df["role"] == "train"][cols].reset_index(drop=True),
        val=df[df["role"] == "val"][cols].reset_index(drop=True),
        test=df[df["role"] == "test"][cols].reset_index(drop=True),
        cold_items=set(cold_items),
        seen=df[df["role"] != "test"][["user", "item"]].reset_index(drop=True),
    )


class RecommenderRun:
    """A finished run loaded for recommending: ``top(user, k)``, ``top_for_history(items, k)``."""

    def __init__(self, path: str | Path, progress: bool = False) -> None:
        p = Path(path)
        if not (p / RUN_FILE).is_file():
            raise ModelError(f"'{p}' is not a finished recommender run (no {RUN_FILE}); run `recommend fit` first")
        self.path = p
        self.meta: dict[str, Any] = json.loads((p / RUN_FILE).read_text(encoding="utf-8"))
        self.model_version: str = self.meta["model_version"]
        items = pd.read_parquet(p / "items.parquet")
        self.catalogue = Catalogue(list(items["item"]), list(items["text"]), list(items["title"]))
        self.interactions = pd.read_parquet(p / "interactions.parquet")
        self.histories = index_histories(self.interactions, self.catalogue)
        counts = self.interactions["item"].map(self.catalogue.index).value_counts()
        self.popular = [int(i) for i in counts.index]
        self.text = TextTwoTower.load(p / MODEL_DIR, self.meta, progress=progress)
        emb = np.load(p / "item_embeddings.npy")
        self.als = None
        factors = None
        if self.meta.get("blend_weight", 0) > 0 and (p / "als.npz").is_file():
            self.als = load_als(str(p / "als.npz"))
            factors = np.asarray(self.als.item_factors, dtype=np.float32)
        self.scorer = BlendedScorer(self.meta.get("blend_weight", 0.0) if self.als is not None else 0.0)
        # the served ALS learned from every interaction of the run: only items without any are cold
        seen = np.zeros(len(self.catalogue), dtype=bool)
        seen[self.interactions["item"].map(self.catalogue.index).to_numpy(dtype=np.int64)] = True
        self.scorer.fit(emb, factors, cold=~seen)

    def item_indices(self, items: list[str]) -> list[int]:
        unknown = [i for i in items if i not in self.catalogue.index]
        if unknown:
            raise DataError(f"unknown item id(s) {unknown[:5]} (not in the run's catalogue of {len(self.catalogue)})")
        return [self.catalogue.index[i] for i in items]

    def top_for_history(self, history: list[int], k: int = 10, exclude: set[int] | None = None) -> list[dict[str, Any]]:
        """Top ``k`` items for a time-ordered history of catalogue indices, never one of those items."""
        return self.top_for_histories([history], k, [exclude or set()])[0]

    def top_for_histories(
        self, histories: list[list[int]], k: int, excludes: list[set[int]] | None = None
    ) -> list[list[dict[str, Any]]]:
        """`top_for_history` for many users in one encoder pass (what a serving micro-batch needs)."""
        emb = self.text.encode_users(histories, self.catalogue.titles)
        factors = None
        if self.scorer.weight > 0 and self.als is not None:
            rows = [r for r, h in enumerate(histories) for _ in h]
            cols = [i for h in histories for i in h]
            m = sp.csr_matrix(
                (np.ones(len(cols), np.float32), (rows, cols)), shape=(len(histories), len(self.catalogue))
            )
            m.data[:] = 1.0
            factors = np.asarray(self.als.recalculate_user(np.arange(len(histories)), m), dtype=np.float32)
            factors = factors.reshape(len(histories), -1)
        excl = [set(h) | (excludes[r] if excludes else set()) for r, h in enumerate(histories)]
        ids, scores = self.scorer.top_k(emb, k, excl, factors)
        return [
            [self._item(int(i), float(s)) for i, s in zip(ids[r], scores[r], strict=True) if i >= 0]
            for r in range(len(histories))
        ]

    def top(self, user: str, k: int = 10, fallback: str | None = None) -> list[dict[str, Any]]:
        """Top ``k`` for a known user, excluding every item they already have; ``fallback='popular'``
        answers unknown users with the most popular items instead of an error."""
        if user not in self.histories:
            if fallback == "popular":
                return [self._item(i, None) for i in self.popular[:k]]
            raise DataError(
                f"unknown user {user!r}: not in the run's {len(self.histories)} users (use --fallback popular "
                "to answer with the most popular items)"
            )
        return self.top_for_history(self.histories[user], k)

    def _item(self, i: int, score: float | None) -> dict[str, Any]:
        return {"item": self.catalogue.ids[i], "title": self.catalogue.titles[i], "score": score}


def evaluate_run(path: str | Path, log: Log = _quiet) -> EvalResult:
    """Re-evaluate a saved run on the split it was fitted on (baselines refitted, the text model reused)."""
    run = RecommenderRun(path)
    cfg = RecommenderConfig.model_validate(yaml.safe_load((run.path / "config.yaml").read_text(encoding="utf-8")))
    split = split_from_roles(run.interactions, run.meta["cold_items"])
    emb = np.load(run.path / "item_embeddings.npy")
    return evaluate_recommenders(split, run.catalogue, run.text, cfg, log, item_embeddings=emb)
