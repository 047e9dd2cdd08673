"""Parameter-efficient fine-tuning: LoRA, AdaLoRA, prefix tuning, bottleneck adapters, top-layer freezing.

Every method wraps the Hugging Face classifier in a `MethodModel`, which the training loop drives like any
model, and which saves only the task-specific part (method weights + classification head) next to a
reference to the base model. Reloading builds the base model again and loads that part on top, so the
reloaded model gives the training process's predictions exactly.

- ``lora`` and ``adalora`` come from `peft` (Hu et al. 2021; Zhang et al. 2023).
- ``adapter`` (Houlsby et al. 2019) and ``prefix`` (Li & Liang 2021) are small modules of our own: `peft` has
  no bottleneck adapter, AdapterHub's ``adapters`` pins transformers 4.x, and peft's prefix tuning needs
  ``past_key_values``, which BERT-style encoders no longer take in transformers 5.
- ``freeze`` trains only the top N encoder layers, the pooler and the head.

With vocabulary extension (`growthcurve.models.vocab`) every method also trains the new embedding rows, and
only those, through peft's trainable tokens (`TrainableTokensLayer`): the adapter then holds
``new rows x hidden`` numbers instead of the whole embedding table.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from growthcurve.config import FinetuneConfig, PeftConfig
from growthcurve.errors import ConfigError, ModelError
from growthcurve.models.fastpath import first_token_last_layer
from growthcurve.models.hf import HFModel, load_pretrained, resolve_model_path

PEFT_METHODS = ("lora", "adalora", "prefix", "adapter", "freeze")
MERGEABLE = ("lora", "adalora")
METHOD_FILE = "method.json"  # method, options and base model of a PEFT run's model folder
WEIGHTS_FILE = "method_weights.safetensors"  # task-specific tensors of our own methods
PEFT_WEIGHTS_FILE = "adapter_model.safetensors"  # what peft writes for LoRA/AdaLoRA
DEFAULT_LORA_TARGETS = ("query", "key", "value", "dense")
# Learning rates each method needs when the user sets none (TrainConfig's 2e-4 suits full fine-tuning only:
# LoRA at 1e-3 reached 59.8% after one BANKING77 epoch, at 3e-3 80.9%; see docs/peft.md for the sweeps).
METHOD_LEARNING_RATES = {"lora": 3e-3, "adalora": 3e-3, "prefix": 1e-2, "adapter": 1e-2, "freeze": 5e-4}
_PREFIX_ATTN = "growthcurve_prefix"
_PREFIX_ATTR = "_growthcurve_prefix_kv"

# Sublayer output projections after which Houlsby adapters go: (attention, feed-forward) per layer.
_ADAPTER_SITES = (
    re.compile(r"(^|\.)layer\.(\d+)\.(attention\.output\.dense|output\.dense)$"),  # BERT, RoBERTa, MiniLM, ELECTRA
    re.compile(r"(^|\.)layer\.(\d+)\.(attention\.out_lin|ffn\.lin2)$"),  # DistilBERT
)
_LAYER = re.compile(r"(^|\.)layer\.(\d+)\.")


# ----------------------------------------------------------------------------------------------
# our own modules


class BottleneckAdapter(nn.Module):
    """Houlsby bottleneck: h + up(act(down(h))), with ``up`` zero-initialised so training starts at the base model."""

    def __init__(self, hidden_size: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(hidden_size, bottleneck)
        self.up = nn.Linear(bottleneck, hidden_size)
        self.act = nn.GELU()
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """The adapted hidden states (same shape)."""
        return hidden + self.up(self.act(self.down(hidden)))


class PrefixEncoder(nn.Module):
    """Learned key/value prefixes for every attention layer (Li & Liang 2021).

    With ``projection_hidden`` the prefixes are an MLP of a small embedding while training (the paper's
    reparameterisation, for stability); the saved form is the prefix tensor itself, as in the paper.
    Prefixes are always computed in fp32 outside autocast, so the in-memory and the reloaded model agree
    bit for bit.
    """

    def __init__(self, n_layers: int, n_heads: int, head_dim: int, length: int, projection_hidden: int | None) -> None:
        super().__init__()
        self.shape = (length, n_layers, 2, n_heads, head_dim)
        out = n_layers * 2 * n_heads * head_dim
        if projection_hidden:
            hidden = n_heads * head_dim
            self.embedding = nn.Parameter(torch.randn(length, hidden))
            self.mlp = nn.Sequential(nn.Linear(hidden, projection_hidden), nn.Tanh(), nn.Linear(projection_hidden, out))
        else:
            self.prefix = nn.Parameter(torch.randn(length, out))

    def flat(self) -> torch.Tensor:
        """The prefixes as one [length, layers·2·hidden] fp32 tensor."""
        device = (self.embedding if hasattr(self, "mlp") else self.prefix).device.type
        with torch.autocast(device, enabled=False):
            if hasattr(self, "mlp"):
                return self.mlp(self.embedding.float())
            return self.prefix.float()

    def forward(self) -> torch.Tensor:
        """Prefixes shaped [layers, 2 (key/value), 1, heads, length, head_dim]."""
        return self.flat().view(*self.shape).permute(1, 2, 3, 0, 4).unsqueeze(2)


def _prefix_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> Any:
    """SDPA attention with the layer's learned prefix keys/values in front of the sequence's own.

    Registered as a transformers attention implementation: the encoder's attention modules call it with
    their projected query/key/value, so no modeling code is copied. Prefix positions are always visible.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    kv = getattr(module, _PREFIX_ATTR, None)
    if kv is not None:
        b = query.shape[0]
        key = torch.cat([kv[0].expand(b, -1, -1, -1).to(key.dtype), key], dim=2)
        value = torch.cat([kv[1].expand(b, -1, -1, -1).to(value.dtype), value], dim=2)
        if attention_mask is not None:  # 4-D boolean SDPA mask [b, 1, q, k]: prefixes are attended to
            visible = attention_mask.new_ones((*attention_mask.shape[:-1], kv[0].shape[2]))
            attention_mask = torch.cat([visible, attention_mask], dim=-1)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _register_prefix_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(_PREFIX_ATTN, _prefix_attention)
    AttentionMaskInterface.register(_PREFIX_ATTN, sdpa_mask)


class _AddAuxLoss(torch.autograd.Function):
    """Identity on ``x`` whose backward also back-propagates ``aux`` (a regulariser the loop never sees)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        ctx.aux_dtype = aux.dtype
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad, torch.ones((), dtype=ctx.aux_dtype, device=grad.device)


# ----------------------------------------------------------------------------------------------
# the wrapper the loop trains


class MethodModel(nn.Module):
    """A classifier fine-tuned with a parameter-efficient method; saves only its task-specific part.

    Attribute access falls through to the wrapped model (``config``, ``get_input_embeddings``...), as
    peft's own wrapper does.
    """

    def __init__(self, model: HFModel, method: str, info: dict[str, Any]) -> None:
        super().__init__()
        self.model: HFModel = model
        self.method = method
        self.info = info  # method options + base model, written to method.json
        self.extra = nn.ModuleDict()
        self._attn_modules: list[nn.Module] = []
        self._orth_reg_weight = 0.0
        self._adalora_ready = False

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "model":
                raise
            return getattr(self.model, name)

    @property
    def hf_model(self) -> HFModel:
        """The underlying transformers model (inside peft's wrapper for LoRA/AdaLoRA)."""
        return self.model.get_base_model() if self.method in MERGEABLE else self.model

    def forward(self, **kwargs: Any) -> Any:
        """Run the classifier; prefix tuning first hands every attention layer its prefix."""
        if self.method == "prefix":
            kv = self.extra["prefix"]()
            for i, attn in enumerate(self._attn_modules):
                setattr(attn, _PREFIX_ATTR, (kv[i, 0], kv[i, 1]))
            try:
                return self.model(**kwargs)
            finally:
                for attn in self._attn_modules:
                    setattr(attn, _PREFIX_ATTR, None)
        out = self.model(**kwargs)
        if self.method == "adalora" and self.training and self._orth_reg_weight > 0 and torch.is_grad_enabled():
            out.logits = _AddAuxLoss.apply(out.logits, self._orth_reg_weight * self._orthogonal_penalty())
        return out

    def _orthogonal_penalty(self) -> torch.Tensor:
        """AdaLoRA's ‖PᵀP − I‖ + ‖QQᵀ − I‖ regulariser (peft adds it only when the model computes the loss)."""
        terms = []
        for name, p in self.model.named_parameters():
            if p.requires_grad and ("lora_A" in name or "lora_B" in name):
                cov = p @ p.T if "lora_A" in name else p.T @ p
                terms.append(torch.linalg.norm(cov - torch.eye(cov.shape[0], device=cov.device), "fro"))
        return torch.stack(terms).mean() if terms else torch.zeros(())

    def on_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called by the training loop after each optimiser step (before gradients are cleared).

        AdaLoRA re-allocates its rank budget here; its schedule needs the run's total step count.
        """
        if self.method != "adalora":
            return
        cfg = self.model.peft_config["default"]
        if not self._adalora_ready:
            cfg.total_step = max(total_steps, 3)
            cfg.tinit = int(self.info["options"]["adalora_tinit"] * cfg.total_step)
            cfg.tfinal = int(self.info["options"]["adalora_tfinal"] * cfg.total_step)
            if cfg.tinit >= cfg.total_step - cfg.tfinal:
                cfg.tinit, cfg.tfinal = 0, 0
            self._adalora_ready = True
        final = step >= cfg.total_step - cfg.tfinal
        if final and cfg.rank_pattern is None and not self.model.base_model.rankallocator.ipt:
            return  # resumed inside the final phase: peft's importance averages are gone, keep the ranks as they are
        self.model.base_model.update_and_allocate(step)

    # ---- saving

    def task_state_dict(self) -> dict[str, torch.Tensor]:
        """Our own methods' task-specific tensors: trained parameters (+ the fixed prefix instead of its MLP)."""
        out: dict[str, torch.Tensor] = {}
        for name, p in self.named_parameters():
            if p.requires_grad and not name.startswith("extra.prefix."):
                out[name] = p.detach().cpu().contiguous()
        if self.method == "prefix":
            with torch.no_grad():
                prefix = self.extra["prefix"]
                assert isinstance(prefix, PrefixEncoder)
                out["extra.prefix.prefix"] = prefix.flat().detach().cpu().contiguous()
        return out

    def save_pretrained(self, path: str | Path, safe_serialization: bool = True, **_: Any) -> None:
        """Write the task-specific weights, the classifier's config and ``method.json`` into ``path``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.method in MERGEABLE:
            with warnings.catch_warnings():  # AdaLoRA saves fully pruned modules as rank-0 tensors, by design
                warnings.filterwarnings("ignore", message=".*LoRA tensor\\(s\\) have invalid shape")
                # peft's "auto" saves the whole embedding table once the vocabulary differs from the base
                # checkpoint's; the trainable-token delta (the new rows) is saved either way, and the reload
                # resizes the base before loading it (`load_method_model`).
                self.model.save_pretrained(str(path), safe_serialization=True, save_embedding_layers=False)
        else:
            save_file(self.task_state_dict(), str(path / WEIGHTS_FILE), metadata={"format": "pt"})
        hf = self.hf_model
        hf.config.architectures = [type(hf).__name__]
        hf.config.save_pretrained(str(path))
        (path / METHOD_FILE).write_text(json.dumps({"method": self.method, **self.info}, indent=1), encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# building


def head_modules(model: nn.Module) -> list[str]:
    """Names of the task head's top-level modules (everything beside the encoder that has weights)."""
    prefix = getattr(model, "base_model_prefix", "")
    return [n for n, m in model.named_children() if n != prefix and any(True for _ in m.parameters())]


def _checkpoint_keys(model_path: str) -> set[str] | None:
    """Tensor names stored in a local safetensors checkpoint (headers only), or None when unknown."""
    p = Path(model_path)
    if (p / "model.safetensors.index.json").is_file():
        return set(json.loads((p / "model.safetensors.index.json").read_text())["weight_map"])
    if (p / "model.safetensors").is_file():
        from safetensors import safe_open

        with safe_open(str(p / "model.safetensors"), "pt") as fh:
            return set(fh.keys())
    return None


def fresh_modules(model: nn.Module, model_path: str) -> list[str]:
    """Modules outside the head whose weights the base checkpoint lacks (randomly initialised).

    A frozen random pooler, say, would differ between training and reload; these are trained and saved.
    """
    keys = _checkpoint_keys(model_path)
    if keys is None:
        return []
    prefix = getattr(model, "base_model_prefix", "") + "."
    stored = {k.removeprefix(prefix) for k in keys}
    heads = tuple(h + "." for h in head_modules(model))
    owners = {
        n.rsplit(".", 1)[0]
        for n, _ in model.named_parameters()
        if not n.startswith(heads) and n.removeprefix(prefix) not in stored
    }
    return sorted(owners)


def default_modules_to_save(model: nn.Module, model_path: str) -> list[str]:
    """``[pooler]`` when ``model_path`` is a sentence-transformers folder that pools without [CLS], else ``[]``.

    Such checkpoints (all-MiniLM-L6-v2, for one) keep a BERT pooler that their training never used, while
    Hugging Face's classifier reads [CLS] through it: left frozen it caps every PEFT method (BANKING77, one
    epoch: LoRA 80.9% frozen, 90.4% trained; docs/peft.md). Prefix tuning does not take this default: at its
    1e-2 rate a trained pooler made it diverge (5 epochs: 1.2% against 82.5% with the pooler frozen).
    """
    pooling = Path(model_path) / "1_Pooling" / "config.json"
    if not (Path(model_path) / "modules.json").is_file() or not pooling.is_file():
        return []
    try:
        cls_pooling = bool(json.loads(pooling.read_text(encoding="utf-8")).get("pooling_mode_cls_token", False))
    except (OSError, ValueError):
        return []
    has_pooler = any(n.endswith("pooler") for n, _ in model.named_modules())
    return ["pooler"] if has_pooler and not cls_pooling else []


def _named_modules(model: nn.Module, names: list[str], heads: list[str]) -> list[str]:
    """Full names of the modules ``peft.modules_to_save`` asks for (``pooler`` -> ``bert.pooler``)."""
    found: list[str] = []
    all_names = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters())]
    for want in names:
        hits = [n for n in all_names if (n == want or n.endswith("." + want)) and not n.startswith(tuple(heads))]
        if not hits:
            tops = sorted({n.rsplit(".", 1)[-1] for n in all_names if n.count(".") <= 1})
            raise ConfigError(
                f"peft.modules_to_save: '{want}' is not a module of this model; modules near the top: {', '.join(tops)}"
            )
        found += [h for h in hits if not any(h.startswith(o + ".") for o in hits)]  # outermost matches only
    return found


def _linear_names(model: nn.Module, exclude: tuple[str, ...]) -> set[str]:
    return {
        n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear) and not n.startswith(exclude)
    }


def _lora_targets(model: nn.Module, opts: PeftConfig, heads: list[str]) -> list[str]:
    present = _linear_names(model, tuple(heads))
    if opts.target_modules:
        missing = [t for t in opts.target_modules if t not in present]
        if missing:
            raise ConfigError(
                f"peft.target_modules: {', '.join(missing)} not in this model; its linear modules are: "
                f"{', '.join(sorted(present))}"
            )
        return list(opts.target_modules)
    targets = [t for t in DEFAULT_LORA_TARGETS if t in present]
    if not targets:
        raise ConfigError(
            f"no default LoRA target in this model; set peft.target_modules to some of: {', '.join(sorted(present))}"
        )
    return targets


def _peft_task_type(task: str) -> Any:
    from peft import TaskType

    return {"text-classification": TaskType.SEQ_CLS, "token-classification": TaskType.TOKEN_CLS}.get(task)


def _embedding_name(model: HFModel) -> str:
    """Full module name of the model's input embedding table (``bert.embeddings.word_embeddings``)."""
    emb = model.get_input_embeddings()
    name = next((n for n, m in model.named_modules() if m is emb), None)
    if name is None:
        raise ModelError(f"{type(model).__name__} has no input embedding module to add trainable tokens to")
    return name


def _wrap_peft(
    model: nn.Module,
    method: str,
    opts: PeftConfig,
    task: str,
    heads: list[str],
    fresh: list[str],
    new_tokens: Sequence[int] = (),
) -> Any:
    from peft import AdaLoraConfig, LoraConfig, get_peft_model

    targets = _lora_targets(model, opts, heads)
    fresh_linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.startswith(tuple(fresh))]
    common: dict[str, Any] = {
        "task_type": _peft_task_type(task),
        "target_modules": targets,
        "lora_alpha": opts.lora_alpha,
        "lora_dropout": opts.lora_dropout,
        "modules_to_save": heads + fresh,  # the head is always trained and saved with the adapter
        "exclude_modules": fresh_linear or None,
        # rows added by vocabulary extension: peft trains and saves exactly these rows of the frozen table
        "trainable_token_indices": {_embedding_name(model): list(new_tokens)} if new_tokens else None,
    }
    if method == "lora":
        pcfg = LoraConfig(r=opts.lora_r, **common)
    else:
        if opts.adalora_target_r > opts.adalora_init_r:
            raise ConfigError(
                f"peft.adalora_target_r ({opts.adalora_target_r}) must not exceed peft.adalora_init_r "
                f"({opts.adalora_init_r})"
            )
        # total_step is unknown until the loop sizes the run; MethodModel.on_optimizer_step sets the schedule.
        pcfg = AdaLoraConfig(
            init_r=opts.adalora_init_r, target_r=opts.adalora_target_r, total_step=1000, tinit=0, tfinal=0, **common
        )
    with warnings.catch_warnings():  # peft 0.21 calls a transformers 5 alias deprecated for v6
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        return get_peft_model(model, pcfg)


def _adapter_sites(model: nn.Module) -> list[str]:
    for pattern in _ADAPTER_SITES:
        sites = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and pattern.search(n)]
        if sites:
            return sites
    raise ModelError(
        "method=adapter supports BERT-style encoders (BERT, RoBERTa, MiniLM, ELECTRA, DistilBERT); this model has "
        "none of their attention/feed-forward output projections"
    )


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    mods = [m for n, m in model.named_modules() if type(m).__name__.endswith("SelfAttention") and hasattr(m, "config")]
    n_layers = getattr(model.config, "num_hidden_layers", None)
    if not mods or len(mods) != n_layers:
        raise ModelError(
            "method=prefix supports BERT-style encoders (one self-attention module per layer); "
            f"found {len(mods)} for {n_layers} layers"
        )
    return mods


def _layer_index(name: str) -> int | None:
    m = _LAYER.search(name)
    return int(m.group(2)) if m else None


def with_method_defaults(cfg: FinetuneConfig) -> FinetuneConfig:
    """``cfg`` with the method's learning rate when the user left ``train.learning_rate`` unset."""
    lr = METHOD_LEARNING_RATES.get(cfg.method)
    if lr is None or "learning_rate" in cfg.train.model_fields_set:
        return cfg
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"learning_rate": lr})})


def apply_method(
    model: HFModel,
    cfg: FinetuneConfig,
    model_path: str,
    for_inference: bool = False,
    new_tokens: Sequence[int] = (),
) -> nn.Module:
    """Wrap a freshly built classifier for ``cfg.method`` (``full`` returns it unchanged).

    ``for_inference`` builds the saved form (prefix tensor without its reparameterisation MLP).
    ``new_tokens``: ids of embedding rows added by vocabulary extension (the table already resized); the
    method trains these rows, and no other row, and saves them with its own weights.
    """
    method = cfg.method
    if method == "full":
        return model
    if method not in PEFT_METHODS:
        raise ConfigError(f"unknown method '{method}'; use one of: full, {', '.join(PEFT_METHODS)}")
    opts = cfg.peft
    heads = head_modules(model)
    fresh = [] if for_inference else fresh_modules(model, model_path)
    if not for_inference:
        auto = default_modules_to_save(model, model_path) if method != "prefix" else []
        extra = opts.modules_to_save if opts.modules_to_save is not None else auto
        fresh = sorted(set(fresh) | set(_named_modules(model, extra, heads)))
    info: dict[str, Any] = {
        "base_model": cfg.model.name_or_path,
        "options": opts.model_dump(mode="json"),
        "heads": heads,
        "fresh": fresh,
    }
    new_tokens = list(new_tokens)
    if new_tokens:
        # what the reload resizes the base model's table to before loading the trained rows
        info["vocab"] = {"base_size": min(new_tokens), "size": model.get_input_embeddings().num_embeddings}
    if method in MERGEABLE:
        wrapped = MethodModel(_wrap_peft(model, method, opts, cfg.task, heads, fresh, new_tokens), method, info)
        if method == "adalora":
            wrapped._orth_reg_weight = wrapped.model.peft_config["default"].orth_reg_weight
        return wrapped

    wrapped = MethodModel(model, method, info)
    trainable_prefixes = [h + "." for h in heads] + [f + "." for f in fresh]
    if new_tokens:
        # Our own methods are not peft tuners, so their configs have no trainable_token_indices; peft's
        # TrainableTokens tuner, injected on its own, is the same mechanism LoRA uses (a delta of the new rows
        # only). `modules_to_save` on the embedding would train and save the whole table (MiniLM: 30,522+ rows
        # x 384, ~47 MB per run instead of ~3 MB for 2,000 new characters) and let the old rows drift.
        from peft import TrainableTokensConfig, inject_adapter_in_model

        emb = _embedding_name(model)
        inject_adapter_in_model(TrainableTokensConfig(target_modules=[emb], token_indices=new_tokens), model)
        trainable_prefixes.append(emb + ".trainable_tokens_delta.")
    for p in model.parameters():
        p.requires_grad_(False)
    hidden = model.config.hidden_size
    if method == "adapter":
        bottleneck = max(1, hidden // opts.adapter_reduction_factor)
        modules = dict(model.named_modules())
        for site in _adapter_sites(model):
            adapter = BottleneckAdapter(hidden, bottleneck)
            key = site.replace(".", "_")
            wrapped.extra[key] = adapter
            modules[site].register_forward_hook(lambda _m, _i, out, a=adapter: a(out))
        # Houlsby et al. also train the layer norms of the encoder layers.
        trainable_prefixes += [
            n + "." for n, m in model.named_modules() if isinstance(m, nn.LayerNorm) and _layer_index(n) is not None
        ]
    elif method == "prefix":
        _register_prefix_attention()
        attn = _attention_modules(model)
        heads_n = model.config.num_attention_heads
        proj = None if for_inference or not opts.prefix_projection else opts.prefix_projection_hidden
        wrapped.extra["prefix"] = PrefixEncoder(len(attn), heads_n, hidden // heads_n, opts.prefix_length, proj)
        wrapped._attn_modules = attn
        model.set_attn_implementation(_PREFIX_ATTN)
    elif method == "freeze":
        layers = sorted({i for n, _ in model.named_parameters() if (i := _layer_index(n)) is not None})
        if opts.freeze_top_layers > len(layers):
            raise ConfigError(f"peft.freeze_top_layers={opts.freeze_top_layers} but the model has {len(layers)} layers")
        top = set(layers[len(layers) - opts.freeze_top_layers :]) if opts.freeze_top_layers else set()
        pooler = [n + "." for n, _ in model.named_modules() if n.endswith("pooler")]
        trainable_prefixes += pooler
        for name, p in model.named_parameters():
            if _layer_index(name) in top:
                p.requires_grad_(True)
    for name, p in model.named_parameters():
        if name.startswith(tuple(trainable_prefixes)):
            p.requires_grad_(True)
    return wrapped


# ----------------------------------------------------------------------------------------------
# loading, sizes


def read_method_info(model_dir: Path) -> dict[str, Any]:
    """``method.json`` of a PEFT model folder."""
    f = Path(model_dir) / METHOD_FILE
    if not f.is_file():
        raise ModelError(f"'{model_dir}' has no {METHOD_FILE}; the run folder is incomplete or from another tool")
    return json.loads(f.read_text(encoding="utf-8"))


def load_method_model(model_dir: Path, meta: dict[str, Any]) -> MethodModel:
    """Rebuild base model + method modules and load the saved task-specific weights on top."""
    import transformers

    info = read_method_info(model_dir)
    method = info["method"]
    base_name = meta.get("base_model") or info["base_model"]
    try:
        base_path = resolve_model_path(base_name)
    except ModelError as exc:
        raise ModelError(f"the base model of this {method} run is unavailable: {exc}") from None
    config = load_pretrained(transformers.AutoConfig, str(model_dir))
    arch = (config.architectures or ["AutoModelForSequenceClassification"])[0]
    cls = getattr(transformers, arch, transformers.AutoModelForSequenceClassification)
    vocab = info.get("vocab")
    if vocab:  # extended vocabulary: load the base at its own size, then grow it to the run's tokenizer
        have = load_pretrained(transformers.AutoConfig, base_path).vocab_size
        if have != vocab["base_size"]:
            raise ModelError(
                f"the base model '{base_name}' has {have} embedding rows but this {method} run in '{model_dir}' "
                f"was trained on one with {vocab['base_size']}; was the base model changed? Restore it, or point "
                "base_model in model/run.json at the original"
            )
        config.vocab_size = vocab["base_size"]
    base = load_pretrained(cls, base_path, config=config)
    new_tokens = _grow_embeddings(base, vocab) if vocab else []
    if method in MERGEABLE:
        from peft import PeftModel

        with warnings.catch_warnings():  # AdaLoRA's rank pattern is keyed by weight, which peft's check misreads
            warnings.filterwarnings("ignore", message=".*rank_pattern keys did not match")
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            wrapped = MethodModel(PeftModel.from_pretrained(base, str(model_dir)), method, info)
        wrapped.info = {k: v for k, v in info.items() if k != "method"}
        return _as_trained(wrapped, meta)
    from safetensors.torch import load_file

    cfg = FinetuneConfig(
        method=method, task=meta.get("task", "text-classification"), peft=PeftConfig(**info["options"])
    )
    applied = apply_method(base, cfg, base_path, for_inference=True, new_tokens=new_tokens)
    assert isinstance(applied, MethodModel)  # every method but "full" wraps
    wrapped = applied
    wrapped.info = {k: v for k, v in info.items() if k != "method"}
    tensors = load_file(str(model_dir / WEIGHTS_FILE))
    result = wrapped.load_state_dict(tensors, strict=False)
    lost = [k for k in result.missing_keys if k.startswith("extra.") or ".trainable_tokens_delta." in k]
    if result.unexpected_keys or lost:
        raise ModelError(
            f"'{model_dir / WEIGHTS_FILE}' does not fit the base model '{base_name}' "
            f"({(result.unexpected_keys or lost)[0]}); was the base model changed?"
        )
    return _as_trained(wrapped, meta)


def _grow_embeddings(base: HFModel, vocab: dict[str, int]) -> list[int]:
    """Resize the base model's embeddings to the run's extended vocabulary; the ids of the added rows.

    The added rows are filled with zeros here because their trained values come from the adapter: the saved
    trainable-token tensor is loaded over them and is what every forward reads for those ids.
    """
    base.resize_token_embeddings(vocab["size"], mean_resizing=False)
    with torch.no_grad():
        base.get_input_embeddings().weight[vocab["base_size"] :] = 0.0
    return list(range(vocab["base_size"], vocab["size"]))


def fold_trainable_tokens(model: nn.Module) -> nn.Module:
    """``model`` with every injected trainable-token layer folded back into a plain ``nn.Embedding``.

    The new rows of our own methods live in peft's `TrainableTokensLayer` (see `apply_method`); a merged
    (plain) model folder needs them written into the table, under the embedding's usual parameter name.
    peft folds them itself for LoRA/AdaLoRA (``merge_and_unload``) but has no unload for a tuner injected on
    its own, so this merges with the layer's own ``merge`` and puts its base layer back in its place.
    """
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    for name, layer in list(model.named_modules()):
        if isinstance(layer, TrainableTokensLayer):
            layer.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, layer.get_base_layer())
    return model


def _as_trained(model: MethodModel, meta: dict[str, Any]) -> MethodModel:
    """The last-layer path the run trained with (`growthcurve.models.fastpath`): bit-identical logits."""
    if meta.get("task", "text-classification") != "token-classification" and meta.get("first_token_only", True):
        first_token_last_layer(model)
    return model


def task_specific_bytes(model_dir: str | Path) -> int:
    """Bytes of the weight files a run adds on top of its base model (the whole model for ``full``)."""
    return sum(f.stat().st_size for f in Path(model_dir).glob("*") if f.suffix in (".safetensors", ".bin"))
