"""Labels: one labelled model against one model per label, on real first names of several locales.

Corpus (built at run time, never stored): the first names that the `faker` package ships for each --locales
(`pip install 'dinogen[bench]'`; its version is printed): first_names_female and first_names_male of the locale's
person provider, cleaned and lowercased as dinogen reads a names file, labelled by locale (`--labels locale`:
de_DE) or by locale and gender (`--labels locale+gender`: de_DE-female). A name found under more than one label
(anna, maria) is dropped from all of them, so that every name has one true label. Each label
then loses a test split (--test-fraction, chosen by --test-seed) before anything trains; a test name with a
character no other name of its label has stays in training, so that every model can score it. Training holds out
data.val_fraction (0.1) of what is left, of each label, for best.pt.

Systems, each trained for --budget seconds in all (train.max_time: training time, validation excluded), the
default config otherwise (with any --set overrides), once per --seeds (train.seed):
  per-label   one model per label on that label's names alone; label L trains for budget x (L's training names
              / all training names) with --split proportional (the default), budget / labels with equal
  input       one model of every label (trained on a folder of one names file per label, the per-label models'
              files), model.label_conditioning=input: a learned label embedding (model.label_dim, 16) concatenated
              to every character's embedding
  state       the same with model.label_conditioning=state: the label sets the initial hidden state

Figures of best.pt, per label: the test loss (nats per character, end tokens included, as training reports it) on
the label's test names, scored for that label; and of --samples names drawn for the label (--temperature, seed 0;
the per-label system draws from the label's own model), the share that a character n-gram classifier assigns to
that label, also among the novel ones (not a training name of any label). The classifier: multinomial naive Bayes
over the 1- to 4-grams of `^name$`, Lidstone smoothing 0.1 (SMOOTHING), equal priors, trained on the training
split (n-grams it never saw are skipped); its accuracy on the real test names is the ceiling of that share. With
several seeds a label's figure is the median over them, and a system's the median of each seed's median test loss
and mean share over the labels.

    python benchmarks/labels.py --json labels.json
    python benchmarks/labels.py --systems input state --seeds 0 1 2 --json conditioning.json
    python benchmarks/labels.py --labels locale+gender --locales de_DE it_IT pl_PL fi_FI
    python benchmarks/labels.py --systems input --budget 60 --set model.hidden_size=256
    python benchmarks/labels.py --quick      # smoke test: figures not meaningful
"""

import math
import os
import statistics
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import _common as bench
import torch
from _inputs import faker_names, split_list
from _output import fmt_float, fmt_int, fmt_pct, log, print_table

from dinogen import Generator
from dinogen.config import load_config
from dinogen.data import EncodedNames
from dinogen.labels import label_indices
from dinogen.run import Run
from dinogen.train import mean_loss

LOCALES = ["en_US", "de_DE", "es_ES", "it_IT", "cs_CZ", "fi_FI"]  # six languages, each 146+ names to train on
GENDERS = ("female", "male")
SYSTEMS = {"per-label": None, "input": "input", "state": "state"}  # name -> model.label_conditioning
FULL = {"budget": 150.0, "samples": 1000}
QUICK = {"budget": 10.0, "samples": 100}
ORDERS = range(1, 5)  # the classifier's n-gram lengths
# The classifier's Lidstone smoothing. Its mean accuracy in 5-fold cross-validation on the default locales' training
# names: 57.9% with add-one (1), 68.7% with 0.3, 70.3% with 0.1, 69.3% with 0.03, 67.8% with 0.01; add-one spreads
# the counts of a small label over the 11,500 n-grams of all labels, so that its names lose to the large ones'.
SMOOTHING = 0.1
START, END = "^", "$"  # boundary marks around a name for the classifier (no first name holds either)
EXAMPLES = 10  # names shown per label


def named_corpus(locales: Sequence[str], by_gender: bool) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Each label's names from faker, and how many were dropped from each for being another label's too."""
    named: dict[str, list[str]] = {}
    for locale in locales:
        for gender in GENDERS:
            label = f"{locale}-{gender}" if by_gender else locale
            try:
                names = faker_names(f"person.{locale}", f"first_names_{gender}", lowercase=True)()
            except (ImportError, AttributeError):
                raise RuntimeError(f"faker has no first_names_{gender} for the locale {locale!r}") from None
            named.setdefault(label, []).extend(names)
    return one_label_each({label: list(dict.fromkeys(names)) for label, names in named.items()})


def one_label_each(named: dict[str, list[str]]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """`named` without the names that more than one label holds, and how many each label lost."""
    labels_of = Counter(name for names in named.values() for name in names)
    kept = {label: [name for name in names if labels_of[name] == 1] for label, names in named.items()}
    return kept, {label: len(named[label]) - len(kept[label]) for label in named}


class NgramClassifier:
    """Multinomial naive Bayes over a name's character n-grams: which label's names it looks most like."""

    def __init__(self, named: dict[str, Iterable[str]]):
        counts = {label: Counter(gram for name in names for gram in self.grams(name)) for label, names in named.items()}
        self.vocabulary = set().union(*counts.values())
        self.log_probs: dict[str, dict[str, float]] = {}
        self.unseen: dict[str, float] = {}  # log-probability of an n-gram the label never had
        for label, grams in counts.items():
            total = sum(grams.values()) + SMOOTHING * len(self.vocabulary)
            self.log_probs[label] = {gram: math.log((count + SMOOTHING) / total) for gram, count in grams.items()}
            self.unseen[label] = math.log(SMOOTHING / total)

    @staticmethod
    def grams(name: str) -> list[str]:
        marked = START + name + END
        return [marked[i : i + n] for n in ORDERS for i in range(len(marked) - n + 1)]

    def classify(self, name: str) -> str:
        """The label whose names' n-grams make `name` likeliest (equal priors; n-grams never seen are skipped)."""
        grams = [gram for gram in self.grams(name) if gram in self.vocabulary]
        return max(self.log_probs, key=lambda label: self._log_likelihood(label, grams))

    def _log_likelihood(self, label: str, grams: list[str]) -> float:
        log_probs, unseen = self.log_probs[label], self.unseen[label]
        return sum(log_probs.get(gram, unseen) for gram in grams)

    def share(self, names: Sequence[str], label: str) -> float:
        """Share of `names` classified as `label` (NaN for no names)."""
        return sum(self.classify(name) == label for name in names) / len(names) if names else math.nan


@dataclass
class Corpus:
    """The labelled names split for the benchmark, and the classifier trained on the training split."""

    names: dict[str, list[str]]  # each label's names, those of several labels dropped
    dropped: dict[str, int]  # names each label lost for being another label's too
    train: dict[str, list[str]]  # what the models train on (dinogen holds out its validation names from these)
    test: dict[str, list[str]]  # never trained on
    classifier: NgramClassifier
    known: frozenset[str]  # every training name: a drawn name outside it is novel

    @classmethod
    def split(cls, named: dict[str, list[str]], dropped: dict[str, int], fraction: float, seed: int) -> "Corpus":
        """Hold out `fraction` of each label's names, chosen by `seed` (see split_list)."""
        parts = {label: split_list(names, fraction, seed) for label, names in named.items()}
        train = {label: rest for label, (rest, _) in parts.items()}
        known = frozenset(name for names in train.values() for name in names)
        test = {label: held for label, (_, held) in parts.items()}
        return cls(named, dropped, train, test, NgramClassifier(train), known)

    def folder(self, path: Path) -> Path:
        """The training names as a folder of names files, one per label (`LABEL.txt`), as dinogen reads labels."""
        path.mkdir(exist_ok=True)
        for label, names in self.train.items():
            (path / f"{label}.txt").write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
        return path


def per_label_budgets(train: dict[str, list[str]], budget: float, rule: str) -> dict[str, float]:
    """Seconds of training for each label's own model: `budget` in all, by training names (proportional) or equal."""
    total = sum(map(len, train.values()))
    return {label: budget * (len(names) / total if rule == "proportional" else 1 / len(train))
            for label, names in train.items()}  # fmt: skip


def test_loss(generator: Generator, names: list[str], label: str | None) -> float:
    """The loss training reports (nats per predicted position, end tokens included) of `names`, given `label`."""
    ids = None if label is None else label_indices([label] * len(names), generator.labels, "the test names")
    return mean_loss(generator.model, EncodedNames(names, generator.vocab, generator.device, ids))


def train(names: Path, seconds: float, seed: int, device, run_dir: Path, extra: Sequence[str] = ()) -> tuple:
    """The default config and `extra` on `names` for `seconds` of training: (best.pt's Generator, the figures)."""
    overrides = [f"data.path={names}", "data.lowercase=true", "train.epochs=null", f"train.max_time={seconds:.3f}",
                 f"train.seed={seed}", f"train.device={device}", *extra]  # fmt: skip
    run = Run(load_config("default", overrides), run_dir)
    run.prepare_dir(overwrite=True)
    run.fit()
    figures = {"overrides": overrides, "steps": run.trainer.step, "seconds": run.trainer.elapsed,
               "parameters": run.model.num_parameters()}  # fmt: skip
    return Generator.from_checkpoint(run.run_dir / "best.pt", device=str(device)), figures


def label_figures(generator: Generator, labelled: bool, label: str, corpus: Corpus, work: SimpleNamespace) -> dict:
    """The test loss of `label`'s test names, and what the classifier makes of `work.samples` names drawn for it."""
    asked = {"label": label} if labelled else {}
    drawn = generator.sample(work.samples, temperature=work.temperature, seed=0, **asked)
    novel = [name for name in drawn if name not in corpus.known]
    return {"test_loss": test_loss(generator, corpus.test[label], label if labelled else None),
            "share": corpus.classifier.share(drawn, label), "novelty": len(novel) / len(drawn),
            "novel_share": corpus.classifier.share(novel, label), "names": drawn[:EXAMPLES]}  # fmt: skip


def system_figures(system: str, corpus: Corpus, work: SimpleNamespace, seed: int, device, workdir: Path) -> dict:
    """One system trained on the training split: its runs' figures, and each label's."""
    conditioning, folder = SYSTEMS[system], corpus.folder(workdir / "train")
    runs, models = [], {}  # label -> its model
    if conditioning is None:
        for label in corpus.train:
            log(f"labels: seed {seed}, the model of {label} alone for {work.budgets[label]:.1f} s ...")
            seconds, run_dir = work.budgets[label], workdir / f"run-{label}"
            models[label], run = train(folder / f"{label}.txt", seconds, seed, device, run_dir, work.overrides)
            runs.append(run)
    else:
        log(f"labels: seed {seed}, one model of every label, label_conditioning={conditioning}, {work.budget:g} s ...")
        extra = [*work.overrides, f"model.label_conditioning={conditioning}"]
        generator, run = train(folder, work.budget, seed, device, workdir / f"run-{system}", extra)
        runs.append(run)
        models = dict.fromkeys(corpus.train, generator)
    labels = {label: label_figures(generator, conditioning is not None, label, corpus, work)
              for label, generator in models.items()}  # fmt: skip
    totals = {key: sum(run[key] for run in runs) for key in ("steps", "seconds", "parameters")}
    return totals | {"models": len(runs), "runs": runs, "labels": labels}


def measure(args, device, workdir: Path) -> dict:
    try:
        import faker
    except ImportError:
        raise RuntimeError("this benchmark needs faker's name lists: pip install 'dinogen[bench]'") from None
    corpus = Corpus.split(*named_corpus(args.locales, args.labels == "locale+gender"), args.test_fraction,
                          args.test_seed)  # fmt: skip
    amounts = QUICK if args.quick else FULL
    work = SimpleNamespace(budget=args.budget or amounts["budget"], samples=args.samples or amounts["samples"],
                           overrides=args.set, temperature=args.temperature)  # fmt: skip
    work.budgets = per_label_budgets(corpus.train, work.budget, args.split)
    labels = {label: {"names": len(corpus.names[label]), "dropped": corpus.dropped[label],
                      "train": len(corpus.train[label]), "test": len(corpus.test[label]),
                      "classifier_accuracy": corpus.classifier.share(corpus.test[label], label),
                      "per_label_budget": work.budgets[label], "examples": corpus.train[label][:5]}
              for label in corpus.names}  # fmt: skip
    runs = {seed: {system: system_figures(system, corpus, work, seed, device, workdir) for system in args.systems}
            for seed in args.seeds}  # fmt: skip
    return {"faker_version": faker.VERSION, "settings": vars(work), "labels": labels, "runs": runs,
            "load_average_at_end": [round(load, 2) for load in os.getloadavg()]}  # fmt: skip


def medians(results: dict) -> dict[str, dict[str, dict[str, float]]]:
    """system -> label -> figure, each the median over the seeds."""
    rounds = list(results["runs"].values())
    keys = ("test_loss", "share", "novelty", "novel_share")
    return {system: {label: {key: statistics.median(r[system]["labels"][label][key] for r in rounds) for key in keys}
                     for label in results["labels"]} for system in rounds[0]}  # fmt: skip


def summary(run: dict) -> dict[str, float]:
    """One system's figures over its labels in one round: the median test loss, the mean of the other figures."""
    by_label = run["labels"].values()
    means = {key: statistics.fmean(f[key] for f in by_label) for key in ("share", "novelty", "novel_share")}
    return {"test_loss": statistics.median(f["test_loss"] for f in by_label)} | means


def report(results: dict) -> None:
    labels, figures = results["labels"], medians(results)
    rounds = list(results["runs"].values())
    summaries = {system: [summary(r[system]) for r in rounds] for system in figures}  # one per seed

    def overall(system: str, key: str) -> float:
        return statistics.median(seed[key] for seed in summaries[system])

    ceiling = statistics.fmean(row["classifier_accuracy"] for row in labels.values())
    print_table(
        f"Corpus: first names of faker {results['faker_version']}; a label's test names are never trained on",
        ["label", "names", "dropped: other labels' too", "train", "test", "classifier on test names",
         "per-label budget s", "e.g."],
        [[label, fmt_int(row["names"]), fmt_int(row["dropped"]), fmt_int(row["train"]), fmt_int(row["test"]),
          fmt_pct(row["classifier_accuracy"]), fmt_float(row["per_label_budget"], 1), ", ".join(row["examples"])]
         for label, row in labels.items()],
        [f"classifier: multinomial naive Bayes over the 1- to 4-grams of ^name$, Lidstone smoothing {SMOOTHING}, "
         f"equal priors, trained on the training split; on the real test names {fmt_pct(ceiling)} (mean over labels)"],
    )  # fmt: skip
    seeds, settings = ", ".join(map(str, results["runs"])), results["settings"]
    print_table(
        "Per label: test loss of best.pt (nats/char), and the share of the names drawn for the label classified as it",
        ["label", *(f"loss {s}" for s in figures), *(f"share {s}" for s in figures), "real test names"],
        [[label, *(fmt_float(figures[s][label]["test_loss"], 3) for s in figures),
          *(fmt_pct(figures[s][label]["share"]) for s in figures), fmt_pct(labels[label]["classifier_accuracy"])]
         for label in labels]
        + [["median loss, mean share", *(fmt_float(overall(s, "test_loss"), 3) for s in figures),
            *(fmt_pct(overall(s, "share")) for s in figures), fmt_pct(ceiling)]],
        [f"{settings['samples']:,} names drawn per label and system, temperature {settings['temperature']:g}; "
         f"train.seed {seeds}",
         "with several seeds, a label's figure is the median over them, and the last row the median of the seeds' "
         "median loss and mean share",
         "real test names: the classifier on the label's held-out real names, the ceiling of a share"],
    )  # fmt: skip

    def run_median(system: str, key: str) -> float:
        return statistics.median(r[system][key] for r in rounds)

    by_seed = len(rounds) > 1  # then each seed's median loss and mean share too
    print_table(
        f"Systems: {results['settings']['budget']:g} s of training each, the default config"
        + "".join(f" --set {override}" for override in results["settings"]["overrides"]),
        ["system", "models", "params", "training s", "steps", "median test loss", "mean share", "novel",
         "share of novel", *(["loss by seed", "share by seed"] if by_seed else [])],
        [[s, fmt_int(rounds[0][s]["models"]), fmt_int(run_median(s, "parameters")),
          fmt_float(run_median(s, "seconds"), 1), fmt_int(run_median(s, "steps")),
          fmt_float(overall(s, "test_loss"), 3), fmt_pct(overall(s, "share")), fmt_pct(overall(s, "novelty")),
          fmt_pct(overall(s, "novel_share"))]
         + ([" ".join(fmt_float(seed["test_loss"], 3) for seed in summaries[s]),
             " ".join(fmt_pct(seed["share"]) for seed in summaries[s])] if by_seed else [])
         for s in figures],
        ["per-label: a model per label, trained for its budget above; input, state: one model of every label with "
         "model.label_conditioning=input, state; with several seeds, medians over them",
         "novel: drawn names that are no label's training name; targets: a labelled model's median test loss no "
         "worse than per-label's, a share of at least 80%",
         "load average at the end: " + " / ".join(f"{load:.2f}" for load in results["load_average_at_end"])],
    )  # fmt: skip
    for system in figures:
        print(f"\n{system}, train.seed {next(iter(results['runs']))}, the first {EXAMPLES} names drawn:")
        for label in labels:
            print(f"  {label}: {', '.join(rounds[0][system]['labels'][label]['names'])}")


def main(argv: list[str] | None = None) -> int:
    parser = bench.parser(__doc__, "device", "quick")
    parser.add_argument("--locales", nargs="+", default=LOCALES, help=f"faker locales [{' '.join(LOCALES)}]")
    parser.add_argument("--labels", choices=["locale", "locale+gender"], default="locale", help="[locale]")
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS), help="[all]")
    parser.add_argument("--budget", type=float, help=f"seconds of training per system [{FULL['budget']:g}; --quick "
                        f"{QUICK['budget']:g}]")  # fmt: skip
    parser.add_argument("--split", choices=["proportional", "equal"], default="proportional",
                        help="how per-label divides the budget among its models [proportional]")  # fmt: skip
    parser.add_argument("--samples", type=int, help=f"names drawn per label [{FULL['samples']:,}; --quick "
                        f"{QUICK['samples']}]")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="train.seed of each round; medians [0]")
    parser.add_argument("--test-fraction", type=float, default=0.15, help="of each label, held out [0.15]")
    parser.add_argument("--test-seed", type=int, default=0, help="chooses the test names [0]")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every system's models, e.g. model.hidden_size=256")  # fmt: skip
    parser.add_argument("--temperature", type=float, default=1.0, help="of the names drawn per label [1.0]")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads, for every system [1]")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    return bench.run(args, measure, report)


if __name__ == "__main__":
    sys.exit(main())
