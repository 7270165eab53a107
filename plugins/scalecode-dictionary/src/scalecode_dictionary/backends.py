"""The dictionary backends: ``lexicon`` (raw or calibrated) and ``learned-dictionary``."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from scalecode import (
    Backend,
    BackendParams,
    FitConfig,
    FitReport,
    GoldSet,
    Predictions,
    Resources,
    Task,
    TaskType,
)
from scalecode_dictionary.compile import DEFAULT_NEGATORS, MAX_WINDOW, Negation, compile_lexicon
from scalecode_dictionary.lexicon import VALENCE, Entry, Lexicon, read_lexicon, write_lexicon_csv
from scalecode_dictionary.linear import (
    IDENTITY,
    SIGMOID,
    SOFTMAX,
    LinearModel,
    fit_calibration,
    to_predictions,
)
from scalecode_dictionary.scorer import NET_TONE, LexiconScorer, Scores, features
from scalecode_dictionary.tokenize import tokenize

ALL_TASKS = frozenset({TaskType.CLASSIFICATION, TaskType.MULTILABEL, TaskType.REGRESSION})
CALIBRATION_FILE = "calibration.json"
LEARNED_LEXICON_FILE = "lexicon.csv"
LEARNED_MODEL_FILE = "model.json"


class NegationParams(BackendParams):
    window: int = Field(
        0, ge=0, le=MAX_WINDOW, description="tokens before a match in which a negator flips it; 0: off"
    )
    words: list[str] | None = Field(
        None, description="negators; default: English negators and n't contractions"
    )
    scale: float = Field(-1.0, description="factor for the weight of a negated match in a weighted category")

    def settings(self) -> Negation:
        return Negation(self.window, tuple(self.words) if self.words else DEFAULT_NEGATORS, self.scale)


class LexiconParams(BackendParams):
    lexicon: str = Field(description="path of the lexicon file (.dic, .yml/.yaml, .csv, .tsv, .txt)")
    format: Literal["auto", "dic", "yaml", "csv", "tsv"] = "auto"
    encoding: str = Field(
        "utf-8", description="text encoding of the file (LIWC .dic files are often latin-1)"
    )
    prefix_match: bool = Field(
        False, description="treat every entry as a prefix (lexicons shipped without '*')"
    )
    columns: dict[str, str] | None = Field(
        None, description="CSV/TSV column names: {term:, weight:, category:}"
    )
    categories: list[str] | None = Field(None, description="use only these categories")
    positive: list[str] | None = Field(None, description="categories counting as positive (default: by name)")
    negative: list[str] | None = Field(None, description="categories counting as negative (default: by name)")
    negation: NegationParams = Field(default_factory=NegationParams)
    score: str | None = Field(None, description="regression without training: the feature used as the score")
    label_categories: dict[str, str] | None = Field(
        None, description="classification/multi-label without training: label -> category"
    )
    default_label: str | None = Field(
        None, description="classification without training: label when no category hits"
    )
    features: list[str] | None = Field(
        None, description="features the calibration uses (default: proportions, means, net tone)"
    )
    threads: int = Field(1, ge=1, description="scoring threads per replica")
    keep_features: bool = Field(True, description="write the dictionary features beside the predictions")


def load_lexicon(params: LexiconParams) -> Lexicon:
    """Read the lexicon and apply the category and polarity options."""
    lexicon = read_lexicon(
        params.lexicon,
        format=params.format,
        prefix_match=params.prefix_match,
        columns=params.columns,
        encoding=params.encoding,
    )
    if params.categories:
        lexicon = lexicon.restrict(params.categories)
    for side in ("positive", "negative"):
        chosen = getattr(params, side)
        if chosen is not None:
            unknown = [c for c in chosen if c not in lexicon.categories]
            if unknown:
                raise ValueError(
                    f"{side}: unknown categories {unknown}; the lexicon has {lexicon.categories}"
                )
            setattr(lexicon, side, list(chosen))
    return lexicon


def feature_names(lexicon: Lexicon) -> list[str]:
    """The feature columns the scorer produces for a lexicon, in order."""
    return list(features(_empty_scores(lexicon), lexicon))


def _empty_scores(lexicon: Lexicon) -> Scores:
    c = len(lexicon.categories)
    return Scores(
        lexicon.categories, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, c)), np.zeros((0, c))
    )


def default_calibration_features(lexicon: Lexicon) -> list[str]:
    names = feature_names(lexicon)
    return [n for n in names if n.startswith(("prop_", "mean_")) or n == NET_TONE]


def default_score(lexicon: Lexicon) -> str | None:
    """The feature a regression uses without training: mean valence, else net tone."""
    if VALENCE in lexicon.weighted:
        return f"mean_{VALENCE}"
    if lexicon.positive and lexicon.negative:
        return NET_TONE
    return None


class LexiconBackend(Backend):
    """Counts lexicon categories per document; trained, calibrates the counts to the task's codes."""

    name = "lexicon"
    description = (
        "lexicon scores (LIWC .dic, quanteda YAML, CSV/TSV); train to calibrate them to the codebook"
    )
    task_types = ALL_TASKS
    trainable = True
    Params = LexiconParams
    params: LexiconParams

    def __init__(self, task: Task, params: Any = None, *, state_dir: str | Path | None = None) -> None:
        super().__init__(task, params, state_dir=state_dir)
        self.scorer: LexiconScorer | None = None
        self.calibration: LinearModel | None = None

    @classmethod
    def check(cls, task: Task, params: BackendParams, *, train: bool) -> None:
        assert isinstance(params, LexiconParams)
        lexicon = load_lexicon(params)
        # Building the kernel's tables is cheap (well under a second for VADER) and refuses now what
        # load() on a worker would refuse later: a negator of two tokens, a wildcard too long.
        compile_lexicon(lexicon, params.negation.settings())
        names = feature_names(lexicon)
        if train:
            unknown = [f for f in params.features or [] if f not in names]
            if unknown:
                raise ValueError(f"features: unknown {unknown}; available: {', '.join(names)}")
            return
        if task.type is TaskType.REGRESSION:
            score = params.score or default_score(lexicon)
            if score is None:
                raise ValueError(
                    "score: this lexicon has no valence or polar categories; name the feature to use "
                    f"as the score ({', '.join(names)}) or set train: true"
                )
            if score not in names:
                raise ValueError(f"score: unknown feature {score!r}; available: {', '.join(names)}")
            return
        mapping = params.label_categories
        if not mapping:
            raise ValueError(
                "label_categories: map labels to lexicon categories (label: category), "
                "or set train: true to calibrate"
            )
        bad_labels = [label for label in mapping if label not in task.label_names]
        bad_cats = [c for c in mapping.values() if c not in lexicon.categories]
        if bad_labels or bad_cats:
            raise ValueError(
                f"label_categories: labels not in the codebook {bad_labels}, "
                f"categories not in the lexicon {bad_cats}"
            )
        if task.type is TaskType.CLASSIFICATION and params.default_label not in task.label_names:
            raise ValueError("default_label: give the codebook label for documents with no category hits")

    def resources(self) -> Resources:
        return Resources(cpus=float(self.params.threads), batch_size=4096)

    def load(self) -> None:
        lexicon = load_lexicon(self.params)
        self.scorer = LexiconScorer(lexicon, self.params.negation.settings(), threads=self.params.threads)
        if self.state_dir is not None and (self.state_dir / CALIBRATION_FILE).exists():
            self.calibration = LinearModel.load(self.state_dir / CALIBRATION_FILE)

    def _scorer(self) -> LexiconScorer:
        if self.scorer is None:
            self.load()
        assert self.scorer is not None
        return self.scorer

    def fit(self, train: GoldSet, eval: GoldSet | None, config: FitConfig) -> FitReport:
        started = time.perf_counter()
        scorer = self._scorer()
        names = self.params.features or default_calibration_features(scorer.lexicon)
        table = scorer.features(train.texts)
        x = np.column_stack([table[n] for n in names]).astype(np.float64)
        self.calibration = fit_calibration(x, names, train, config.seed)
        config.output_dir.mkdir(parents=True, exist_ok=True)
        self.calibration.save(config.output_dir / CALIBRATION_FILE)
        return FitReport(
            seconds=time.perf_counter() - started,
            n_train=len(train),
            trainable_parameters=len(names) * len(self.calibration.outputs) + len(self.calibration.outputs),
            notes=[f"calibrated on {len(names)} features: {', '.join(names)}"],
        )

    def predict_batch(self, texts: Sequence[str]) -> Predictions:
        scorer = self._scorer()
        table = scorer.features(texts)
        extra = table if self.params.keep_features else {}
        if self.calibration is not None:
            x = np.column_stack([table[n] for n in self.calibration.features]).astype(np.float64)
            out = to_predictions(
                self.calibration.decision(x),
                self.calibration.outputs,
                self.calibration.link,
                self.task.label_names,
            )
            out.extra = extra
            return out
        if self.task.type is TaskType.REGRESSION:
            score = self.params.score or default_score(scorer.lexicon)
            assert score is not None
            return Predictions(score=table[score], extra=extra)
        mapping = self.params.label_categories or {}
        labels = list(mapping)
        counts = np.column_stack([table[f"count_{mapping[label]}"] for label in labels])
        if self.task.type is TaskType.MULTILABEL:
            return Predictions(
                labels=[[labels[j] for j in np.flatnonzero(row)] for row in counts > 0], extra=extra
            )
        return Predictions(label=label_by_counts(counts, labels, self.params.default_label), extra=extra)

    def fingerprint(self) -> dict[str, str]:
        return {self.params.lexicon: self._scorer().lexicon.sha256 or ""}


def label_by_counts(counts: np.ndarray, labels: list[str], default: str | None) -> list[str | None]:
    """Per document, the label whose category has most matches.

    No match, or a tie between the labels with most matches, gives ``default``: a tie must not be
    decided by the order of the keys in the job file. Without a default a tie goes to the first label.
    """
    most = counts.max(axis=1)
    tied = (counts == most[:, None]).sum(axis=1) > 1
    chosen: list[str | None] = []
    for first, top, tie in zip(counts.argmax(axis=1), most, tied, strict=True):
        undecided = top <= 0 or (tie and default is not None)
        chosen.append(default if undecided else labels[first])
    return chosen


class LearnedParams(BackendParams):
    min_df: int = Field(2, ge=1, description="a word must occur in at least this many training documents")
    max_features: int | None = Field(
        20000, ge=1, description="keep at most this many of the most frequent words"
    )
    cv: int = Field(5, ge=2, description="folds of the cross-validation that chooses the L1 penalty")
    threads: int = Field(1, ge=1, description="scoring threads per replica")


class LearnedDictionaryBackend(Backend):
    """A sparse linear model on word frequencies, exported as a lexicon a person can read and reuse.

    Features are each word's share of the document's tokens (in percent), as in LIWC; an L1 penalty
    chosen by cross-validation (grouped when the gold has groups) keeps the few words that matter.
    Predicting is scoring with the learned lexicon: decision = intercept + 100 * sum / tokens.
    """

    name = "learned-dictionary"
    description = "L1 linear model on word frequencies, exported as a readable lexicon (lexicon.csv)"
    task_types = ALL_TASKS
    trainable = True
    requires_training = True
    Params = LearnedParams
    params: LearnedParams

    def __init__(self, task: Task, params: Any = None, *, state_dir: str | Path | None = None) -> None:
        super().__init__(task, params, state_dir=state_dir)
        self.scorer: LexiconScorer | None = None
        self.model: dict[str, Any] | None = None

    def resources(self) -> Resources:
        return Resources(cpus=float(self.params.threads), batch_size=4096)

    def load(self) -> None:
        if self.state_dir is None:
            return  # nothing to load before fit
        model = json.loads((self.state_dir / LEARNED_MODEL_FILE).read_text(encoding="utf-8"))
        lexicon = _read_learned_lexicon(self.state_dir / LEARNED_LEXICON_FILE, model["categories"])
        self._use(lexicon, model)

    def _use(self, lexicon: Lexicon, model: dict[str, Any]) -> None:
        self.model = model
        self.scorer = LexiconScorer(lexicon, Negation(), threads=self.params.threads)

    def fit(self, train: GoldSet, eval: GoldSet | None, config: FitConfig) -> FitReport:
        started = time.perf_counter()
        lexicon, model = learn_dictionary(train, self.params, config.seed)
        config.output_dir.mkdir(parents=True, exist_ok=True)
        write_lexicon_csv(lexicon, config.output_dir / LEARNED_LEXICON_FILE)
        (config.output_dir / LEARNED_MODEL_FILE).write_text(
            json.dumps(model, indent=2) + "\n", encoding="utf-8"
        )
        self._use(lexicon, model)
        return FitReport(
            seconds=time.perf_counter() - started,
            n_train=len(train),
            trainable_parameters=model["info"]["vocabulary"] * len(model["outputs"]) + len(model["outputs"]),
            metrics={"nonzero_weights": float(model["info"]["nonzero_weights"])},
            notes=[
                f"{model['info']['words']} words kept of {model['info']['vocabulary']}; "
                f"lexicon: {config.output_dir / LEARNED_LEXICON_FILE}",
                *model["info"].get("notes", []),
            ],
        )

    def predict_batch(self, texts: Sequence[str]) -> Predictions:
        if self.scorer is None or self.model is None:
            raise RuntimeError("learned-dictionary predicts only after fit, or from a trained state_dir")
        scores = self.scorer.score(texts)
        index = {c: i for i, c in enumerate(scores.categories)}
        tokens = np.maximum(scores.n_tokens, 1).astype(np.float64)
        decision = np.zeros((len(texts), len(self.model["outputs"])))
        for j, (category, intercept) in enumerate(
            zip(self.model["categories"], self.model["intercept"], strict=True)
        ):
            decision[:, j] = intercept
            if category is not None and category in index:
                decision[:, j] += 100.0 * scores.sums[:, index[category]] / tokens
        return to_predictions(decision, self.model["outputs"], self.model["link"], self.task.label_names)

    def fingerprint(self) -> dict[str, str]:
        return {}


def _read_learned_lexicon(path: Path, categories: list[str | None]) -> Lexicon:
    names = [c for c in categories if c is not None]
    text = path.read_text(encoding="utf-8")
    if len(text.strip().splitlines()) <= 1:  # every weight was shrunk to zero
        return Lexicon(name=path.stem, categories=names, entries=[], weighted=set(names))
    lexicon = read_lexicon(path, format="csv")
    for name in names:
        if name not in lexicon.categories:
            lexicon.categories.append(name)
    return lexicon


NO_WORDS_NOTE = (
    "too few training documents to choose the penalty by cross-validation: no word is kept and the "
    "model predicts the training mean or the label frequencies"
)
ONE_LABEL_NOTE = "one label in the training documents: it is always predicted"


def cross_validation_folds(
    n_docs: int, cv: int, seed: int, labels: np.ndarray | None = None, groups: np.ndarray | None = None
) -> Any | None:
    """The folds that choose the L1 penalty, or None when the documents are too few for any.

    Learning-curve subsamples can be tiny, so ``cv`` is an upper bound: fewer groups or documents
    give fewer folds. Grouped folds need two groups; with one, the folds are plain (stratified by
    label for labels, which need some label with two documents).
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    n_groups = len(np.unique(groups)) if groups is not None else 0
    if n_groups >= 2:
        return list(GroupKFold(n_splits=min(cv, n_groups)).split(np.zeros(n_docs), labels, groups))
    if labels is not None:
        sizes = np.unique(labels, return_counts=True)[1]
        # A label rarer than the folds is missing from some of them (scikit-learn warns); only when
        # every label has a single document is no stratified split possible.
        n_splits = max(2, min(cv, int(sizes.min())))
        if n_splits > sizes.max():
            return None
        return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    if n_docs < 2:
        return None
    return KFold(n_splits=min(cv, n_docs), shuffle=True, random_state=seed)


def _log_frequencies(labels: np.ndarray, names: list[str]) -> list[float]:
    """Intercepts whose softmax gives each label its share of the training documents."""
    return [float(np.log(np.mean(labels == name))) for name in names]


def learn_dictionary(train: GoldSet, params: LearnedParams, seed: int) -> tuple[Lexicon, dict[str, Any]]:
    """Fit the L1 model on word frequencies and return the learned lexicon and the model card."""
    import scipy.sparse
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LassoCV, LogisticRegressionCV

    vectorizer = CountVectorizer(
        tokenizer=tokenize,
        lowercase=False,
        token_pattern=None,
        min_df=params.min_df,
        max_features=params.max_features,
    )
    try:
        counts = vectorizer.fit_transform(train.texts)
    except ValueError as exc:
        raise ValueError(
            f"no word occurs in {params.min_df} training documents; lower min_df ({exc})"
        ) from None
    vocabulary = vectorizer.get_feature_names_out()
    tokens = np.array([max(len(tokenize(t)), 1) for t in train.texts], dtype=np.float64)
    x = scipy.sparse.diags(100.0 / tokens) @ counts.astype(np.float64)
    task = train.task
    groups = np.asarray(train.groups) if train.groups is not None else None
    notes: list[str] = []

    def folds(y: np.ndarray | None) -> Any | None:
        return cross_validation_folds(len(train), params.cv, seed, y, groups)

    def logistic(y: np.ndarray, cv: Any) -> Any:
        return LogisticRegressionCV(
            Cs=10,
            l1_ratios=(1.0,),
            solver="saga",
            cv=cv,
            scoring="neg_log_loss",
            max_iter=3000,
            random_state=seed,
            use_legacy_attributes=False,
            tol=1e-3,
        ).fit(x, y)

    outputs: list[str]
    categories: list[str | None]
    penalty: dict[str, Any]
    if task.type is TaskType.REGRESSION:
        outputs, categories, link = ["score"], ["score"], IDENTITY
        cv = folds(None)
        if cv is None:
            notes.append(NO_WORDS_NOTE)
            coef, intercept = np.zeros((1, len(vocabulary))), [float(np.mean(train.scores()))]
            penalty = {}
        else:
            lasso = LassoCV(cv=cv, alphas=50, max_iter=5000, random_state=seed).fit(x, train.scores())
            coef, intercept = lasso.coef_[None, :], [float(lasso.intercept_)]
            penalty = {"alpha": float(lasso.alpha_)}
    elif task.type is TaskType.CLASSIFICATION:
        y = np.asarray(train.targets)
        link = SOFTMAX
        seen = set(y.tolist())
        present = [name for name in task.label_names if name in seen]
        cv = folds(y) if len(present) > 1 else None
        if cv is None:
            # One label (the solver needs two), or too few documents: no words, the label frequencies.
            notes.append(ONE_LABEL_NOTE if len(present) == 1 else NO_WORDS_NOTE)
            outputs, intercept = present, _log_frequencies(y, present)
            coef = np.zeros((len(present), len(vocabulary)))
            penalty = {}
        else:
            model = logistic(y, cv)
            outputs = [str(c) for c in model.classes_]
            coef, intercept = model.coef_, list(model.intercept_)
            if len(outputs) == 2:
                coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
                intercept = [0.0, float(intercept[0])]
            penalty = {"C": float(np.atleast_1d(model.C_)[0])}
        categories = [None if not coef[j].any() else outputs[j] for j in range(len(outputs))]
    else:
        indicator = train.label_indicator()
        outputs, link = task.label_names, SIGMOID
        rows, intercept, cs = [], [], []
        for j in range(indicator.shape[1]):
            column = indicator[:, j]
            cv = folds(column) if column.min() != column.max() else None
            if cv is None:  # the label is always or never present, or too rare to cross-validate
                if column.min() != column.max():
                    notes.append(f"{outputs[j]}: {NO_WORDS_NOTE}")
                prevalence = np.clip(column.mean(), 1e-3, 1 - 1e-3)
                rows.append(np.zeros(len(vocabulary)))
                intercept.append(float(np.log(prevalence / (1 - prevalence))))
                continue
            model = logistic(column, cv)
            rows.append(model.coef_[0])
            intercept.append(float(model.intercept_[0]))
            cs.append(float(np.atleast_1d(model.C_)[0]))
        coef = np.vstack(rows)
        categories = [name if coef[j].any() else None for j, name in enumerate(outputs)]
        penalty = {"C": cs}
    entries = []
    for w, term in enumerate(vocabulary):
        weights = tuple(
            (categories[j], float(coef[j, w]))
            for j in range(len(outputs))
            if categories[j] is not None and coef[j, w] != 0
        )
        if weights:
            entries.append(Entry((str(term),), False, weights))  # type: ignore[arg-type]
    names = [c for c in categories if c is not None]
    lexicon = Lexicon(name="learned", categories=names, entries=entries, weighted=set(names))
    model_card = {
        "kind": "learned-dictionary",
        "task": task.type.value,
        "link": link,
        "outputs": outputs,
        "categories": categories,
        "intercept": [float(b) for b in intercept],
        "feature": "each word's share of the document's tokens, in percent",
        "decision": "intercept + 100 * (sum of weight x count over the document's words) / tokens",
        "info": {
            "n_train": len(train),
            "vocabulary": len(vocabulary),
            "words": len(entries),
            "nonzero_weights": int(np.count_nonzero(coef)),
            "min_df": params.min_df,
            **penalty,
            **({"notes": notes} if notes else {}),
        },
    }
    return lexicon, model_card
