"""Token-classification (NER) data: JSONL tokens+tags, CoNLL two-column files, character-level JSONL.

Every reader returns sentences with the file line each came from, so a bad tag sequence or a
token/tag count mismatch is reported as ``file:line`` in one actionable `DataError`. Empty sentences
are skipped with a counted warning. The tag scheme (IOB2 or IOBES) is detected from the training
tags and every split is checked for invalid transitions in it (e.g. ``I-PER`` without ``B-PER``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from growthcurve.config import DataConfig
from growthcurve.errors import ConfigError, DataError

SCHEMES = ("IOB2", "IOBES")
_PREFIXES = {"IOB2": ("B", "I"), "IOBES": ("B", "I", "E", "S")}


@dataclass
class TokenExamples:
    """One split: words per sentence, their tags, and the source line of each sentence."""

    tokens: list[list[str]]
    tags: list[list[str]]
    lines: list[int]
    source: str
    char_level: bool = False

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, idx: np.ndarray | list[int]) -> TokenExamples:
        """Sentences ``idx`` as a new split."""
        idx = list(idx)
        return TokenExamples(
            [self.tokens[i] for i in idx],
            [self.tags[i] for i in idx],
            [self.lines[i] for i in idx],
            self.source,
            self.char_level,
        )

    @property
    def texts(self) -> list[str]:
        """The sentences as plain strings (characters joined for character-level data, else spaces)."""
        sep = "" if self.char_level else " "
        return [sep.join(t) for t in self.tokens]


@dataclass
class TokenSplits:
    """Train/dev/(test) splits sharing one tag list and scheme."""

    train: TokenExamples
    dev: TokenExamples | None
    test: TokenExamples | None
    tags: list[str]  # label list: "O" first, then entity tags sorted by type and prefix
    scheme: str
    warnings: list[str]

    @property
    def entity_types(self) -> list[str]:
        """Entity types without prefixes, sorted."""
        return sorted({t[2:] for t in self.tags if t != "O"})


# ----------------------------------------------------------------------------------------------
# readers


def _check_pair(tokens: object, tags: object, where: str, tok_name: str, tag_name: str) -> tuple[list, list]:
    if not isinstance(tokens, list) or not isinstance(tags, list):
        bad = tok_name if not isinstance(tokens, list) else tag_name
        raise DataError(f"{where}: '{bad}' must be a JSON list of strings")
    if len(tokens) != len(tags):
        raise DataError(
            f"{where}: {len(tokens)} {tok_name} but {len(tags)} {tag_name}; every token needs exactly one tag"
        )
    return [str(t) for t in tokens], [str(t).strip() for t in tags]


def read_token_jsonl(
    path: str | Path, tokens_column: str = "tokens", tags_column: str = "tags", text_column: str = "text"
) -> tuple[TokenExamples, int]:
    """Read ``{tokens_column: [...], tags_column: [...]}`` per line, or ``{text_column: "...", tags: [...]}``
    (one tag per character, as Chinese NER corpora ship). Returns the split and the number of empty
    sentences skipped."""
    p = Path(path)
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    lines: list[int] = []
    char_level: bool | None = None
    empty = 0
    with p.open(encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{p}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{where}: expected a JSON object per line, found {type(obj).__name__}")
            if tags_column not in obj:
                raise DataError(
                    f"{where}: no '{tags_column}' field (set data.tags_column); fields are: {', '.join(obj)}"
                )
            if tokens_column in obj:
                is_chars = False
                toks, tg = _check_pair(obj[tokens_column], obj[tags_column], where, tokens_column, tags_column)
            elif text_column in obj:
                is_chars = True
                text = obj[text_column]
                if not isinstance(text, str):
                    raise DataError(f"{where}: '{text_column}' must be a string")
                toks, tg = _check_pair(list(text), obj[tags_column], where, "characters in " + text_column, tags_column)
            else:
                raise DataError(
                    f"{where}: no '{tokens_column}' (word list) or '{text_column}' (character-level text) field "
                    f"(set data.tokens_column); fields are: {', '.join(obj)}"
                )
            if char_level is not None and is_chars != char_level:
                raise DataError(f"{where}: mixes character-level '{text_column}' rows with '{tokens_column}' rows")
            char_level = is_chars
            if not toks:
                empty += 1
                continue
            tokens.append(toks)
            tags.append(tg)
            lines.append(lineno)
    return TokenExamples(tokens, tags, lines, str(p), bool(char_level)), empty


def read_conll(path: str | Path) -> tuple[TokenExamples, int]:
    """Read a CoNLL-style file: one ``token<whitespace>tag`` per line (the tag is the last column),
    sentences separated by blank lines, ``-DOCSTART-`` lines skipped."""
    p = Path(path)
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    lines: list[int] = []
    cur_t: list[str] = []
    cur_g: list[str] = []
    start = 0
    empty = 0

    def flush() -> None:
        if cur_t:
            tokens.append(list(cur_t))
            tags.append(list(cur_g))
            lines.append(start)
        cur_t.clear()
        cur_g.clear()

    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"'{p}' is not UTF-8 text (byte {exc.start})") from None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            flush()
            continue
        if line.startswith("-DOCSTART-"):
            flush()
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [x.strip() for x in parts if x.strip()]
        if len(parts) < 2:
            raise DataError(
                f"{p}:{lineno}: expected 'token<TAB>tag' but found {len(parts)} column; "
                "separate sentences with blank lines and give every token a tag"
            )
        if not cur_t:
            start = lineno
        cur_t.append(parts[0])
        cur_g.append(parts[-1])
    flush()
    return TokenExamples(tokens, tags, lines, str(p), False), empty


def read_token_file(path: str | Path, cfg: DataConfig) -> tuple[TokenExamples, list[str]]:
    """Read one token-classification file by extension; returns the split and warnings."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file '{p}' does not exist")
    if p.is_dir():
        raise DataError(f"'{p}' is a folder; give a .jsonl or CoNLL (.conll/.txt/.tsv) file")
    if p.stat().st_size == 0:
        raise DataError(f"data file '{p}' is empty")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json"):
        ex, empty = read_token_jsonl(p, cfg.tokens_column, cfg.tags_column, cfg.text_column)
    elif suffix in (".conll", ".txt", ".tsv", ".bio", ".iob", ".iobes"):
        ex, empty = read_conll(p)
    else:
        raise DataError(f"'{p}': unsupported extension '{suffix}' for token classification (use .jsonl or .conll)")
    warnings = []
    if empty:
        msg = f"'{p}': skipped {empty} empty sentence(s)"
        warnings.append(msg)  # the caller prints it (once)
    if not ex.tokens:
        raise DataError(f"data file '{p}' has no non-empty sentences")
    return ex, warnings


# ----------------------------------------------------------------------------------------------
# tag schemes


def _split_tag(tag: str) -> tuple[str, str]:
    """('B', 'PER') for 'B-PER'; ('O', '') for 'O'; ('', tag) when there is no prefix."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[1] in "-_" and tag[0].isalpha():
        return tag[0].upper(), tag[2:]
    return "", tag


def detect_scheme(examples: TokenExamples) -> str:
    """IOB2 or IOBES from the prefixes used; anything else is an unknown scheme (DataError)."""
    prefixes: set[str] = set()
    for tags, line in zip(examples.tags, examples.lines, strict=True):
        for tag in tags:
            prefix, etype = _split_tag(tag)
            if prefix == "" or (prefix != "O" and not etype):
                raise DataError(
                    f"{examples.source}:{line}: tag {tag!r} has no B-/I- (or S-/E-) prefix: unknown tag scheme; "
                    "use IOB2 (B-TYPE, I-TYPE, O) or IOBES tags"
                )
            prefixes.add(prefix)
    prefixes.discard("O")
    if prefixes <= {"B", "I"}:
        return "IOB2"
    if prefixes <= {"B", "I", "E", "S"}:
        return "IOBES"
    if prefixes <= {"B", "I", "L", "U"}:
        raise DataError(
            f"'{examples.source}': BILOU tags (L-/U-) are not supported; convert them to IOBES (L- to E-, U- to S-)"
        )
    raise DataError(
        f"'{examples.source}': unknown tag scheme (prefixes {', '.join(sorted(prefixes))}); use IOB2 or IOBES tags"
    )


def first_invalid_transition(tags: list[str], scheme: str) -> tuple[int, str] | None:
    """Position and reason of the first tag that breaks ``scheme`` (strict, as seqeval's strict mode reads it)."""
    allowed = _PREFIXES[scheme]
    open_type: str | None = None  # type of the entity still open after the previous tag
    for i, tag in enumerate(tags):
        prefix, etype = _split_tag(tag)
        if prefix != "O" and prefix not in allowed:
            return i, f"tag {tag!r} is not an {scheme} tag"
        if scheme == "IOB2":
            if prefix == "I" and open_type != etype:
                return i, f"{tag!r} without a preceding B-{etype}"
            open_type = etype if prefix in ("B", "I") else None
        else:
            if prefix in ("I", "E") and open_type != etype:
                return i, f"{tag!r} without a preceding B-{etype}"
            if prefix in ("B", "S", "O") and open_type is not None:
                return i, f"entity {open_type!r} opened before {tag!r} is not closed with E-{open_type}"
            open_type = etype if prefix in ("B", "I") else None
    if scheme == "IOBES" and open_type is not None:
        return len(tags), f"entity {open_type!r} is not closed with E-{open_type} at the end of the sentence"
    return None


def validate_tags(examples: TokenExamples, scheme: str) -> None:
    """Raise one DataError naming the first sentence (file:line) with an invalid transition, and the count."""
    bad: list[tuple[int, int, str]] = []
    for tags, line in zip(examples.tags, examples.lines, strict=True):
        found = first_invalid_transition(tags, scheme)
        if found is not None:
            bad.append((line, *found))
    if bad:
        line, pos, why = bad[0]
        more = f" ({len(bad)} sentences have invalid tags)" if len(bad) > 1 else ""
        raise DataError(
            f"{examples.source}:{line}: invalid {scheme} sequence at token {pos + 1}: {why}{more}; "
            "fix the tags, or set data.tag_scheme if they use another scheme"
        )


def tag_list(examples: TokenExamples, scheme: str) -> list[str]:
    """'O' then every prefix of every entity type seen, so the model can emit any valid sequence."""
    types = sorted({_split_tag(t)[1] for tags in examples.tags for t in tags if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in _PREFIXES[scheme]]


# ----------------------------------------------------------------------------------------------
# splits


def load_token_splits(
    cfg: DataConfig, seed: int = 0, tags: list[str] | None = None, scheme: str | None = None
) -> TokenSplits:
    """Read, validate and split the configured token-classification files.

    ``tags``/``scheme`` come from a trained run when its model is evaluated on new data."""
    if cfg.train is None:
        raise ConfigError(
            "task=token-classification needs data.train (a .jsonl or CoNLL file); there is no bundled NER set"
        )
    warnings: list[str] = []
    train, w = read_token_file(cfg.train, cfg)
    warnings += w
    if scheme is None:
        scheme = detect_scheme(train) if cfg.tag_scheme == "auto" else cfg.tag_scheme
    validate_tags(train, scheme)
    given = tags is not None
    if tags is None:
        tags = tag_list(train, scheme)
        if len(tags) < 2:
            raise DataError(f"'{cfg.train}': every tag is 'O'; there are no entities to learn")
    known = set(tags)

    def check_known(ex: TokenExamples) -> None:
        for sent_tags, line in zip(ex.tags, ex.lines, strict=True):
            unseen = [t for t in sent_tags if t not in known]
            if unseen:
                raise DataError(
                    f"{ex.source}:{line}: tag {unseen[0]!r} never occurs in the training data; "
                    "add examples of that entity type to the training file"
                )

    if given:
        check_known(train)

    def other(path: str) -> TokenExamples:
        ex, w2 = read_token_file(path, cfg)
        warnings.extend(w2)
        if ex.char_level != train.char_level:
            raise DataError(
                f"'{path}' is {'character' if ex.char_level else 'word'}-level but the training file is not"
            )
        validate_tags(ex, scheme)
        check_known(ex)
        return ex

    dev = other(cfg.dev) if cfg.dev else None
    if dev is None and cfg.dev_fraction > 0:
        if len(train) < 4:
            raise DataError(f"'{cfg.train}': only {len(train)} sentences; too few to hold out a dev split")
        perm = np.random.default_rng(seed).permutation(len(train))
        n_dev = max(1, round(cfg.dev_fraction * len(train)))
        dev, train = train.subset(np.sort(perm[:n_dev])), train.subset(np.sort(perm[n_dev:]))
        warnings.append(f"no dev file: held out a random {cfg.dev_fraction:.0%} of train ({len(dev)} sentences)")
    elif dev is None:
        warnings.append("no dev split (data.dev_fraction=0): no per-epoch validation; the last epoch is kept")
    test = other(cfg.test) if cfg.test else None
    return TokenSplits(train, dev, test, tags, scheme, warnings)


def read_labelled(path: str | Path, cfg: DataConfig, tags: list[str], scheme: str) -> tuple[TokenExamples, list[str]]:
    """One labelled file checked against a trained run's tags and scheme (``growthcurve evaluate``)."""
    ex, warnings = read_token_file(path, cfg)
    validate_tags(ex, scheme)
    known = set(tags)
    for sent_tags, line in zip(ex.tags, ex.lines, strict=True):
        unseen = [t for t in sent_tags if t not in known]
        if unseen:
            raise DataError(f"{ex.source}:{line}: tag {unseen[0]!r} is not one the model was trained on")
    return ex, warnings
