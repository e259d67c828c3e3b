"""Small names lists (100-1,000 names): which settings give varied, new names; and what folding case buys.

Lists (LISTS, built at run time, never stored in the repository): real name lists that the `faker` package
ships (`pip install 'dinogen[bench]'`): US first names and surnames, Austrian first names, Finnish municipalities,
and a 300-name random subset of the US first names; and 100- and 300-name random subsets of the bundled
data/dinos.txt and of ../shared/data/names.txt. Each list loses a fixed test split (--test-fraction, chosen
by --test-seed) that no run trains or validates on; a test name holding a character no other name of the
list has stays in training, so every model can score the test names.

  settings   (the default experiment) trains each setting (--settings, see SETTINGS) on each lowercased
             list for each --seeds (train.seed: initial weights, data order, the validation split), and
             reports the test loss of best.pt (nats per character, end tokens included) and, over
             --samples names drawn at each --temperatures (seed 0): novelty and uniqueness as
             `dinogen evaluate` defines them (share not among the training and validation names; share
             distinct), and repetitiveness (below). With --unique --novel (unique=True, novel=True at
             the first temperature): the share of plain samples those filters keep, and the
             repetitiveness of the names they let through.
  case       trains each setting on the lists of capitalised names (CASE_LISTS) as written, once with
             data.lowercase=true and once with false (same seed, same split), and compares the test loss
             over all positions, at the first character alone and after it, and the samples.

Repetitiveness (the user's complaint: `thalthalelle`, `aelthalelle`, `lorthalelle`, names that are distinct and
new but end alike): of the distinct names drawn, the share whose last SUFFIX characters (the whole name if it is
shorter) are also the last SUFFIX characters of at least CROWD of the other distinct names. Repeats of one name
count once (uniqueness measures those), so the figure is what --unique --novel leaves. A list of real names
scores some of it too (most dinosaurs end in "urus"), so each list's own figure is printed as the reference.
Stutter (`thalthalelle`): the share of the names drawn in which a run of 3 or more characters comes twice in a
row, or one of 2 characters three times (STUTTER); real lists have a little of it too (`pawpawsaurus`, `barbara`).

    python benchmarks/small_lists.py --temperatures 0.8 1.0 --filters --threads 1 --json small.json
    python benchmarks/small_lists.py --lists names-300 --settings default small --seeds 0
    python benchmarks/small_lists.py case --settings default small --threads 1 --json case.json
"""

import argparse
import json
import re
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from _children import read_metrics
from _common import DEFAULT_NAMES, REPO
from _inputs import faker_names, split_list, split_test
from _machine import machine, print_machine
from _output import fmt_float, fmt_int, fmt_pct, print_table

from dinogen.bundled import bundled_file
from dinogen.config import load_config
from dinogen.data import IGNORE_INDEX, EncodedNames, read_names
from dinogen.run import Run
from dinogen.sample import Generator, NotEnoughNames
from dinogen.train import mean_loss

SUFFIX = 4  # characters of a name's ending that repetitiveness compares
CROWD = 0.02  # share of the other distinct names that must share an ending for it to count as repeated
STUTTER = re.compile(r"(.{3,})\1|(..)\2\2")  # a chunk said again at once: thal-thal, am-am-am

# name -> (config, overrides); every setting is trained with the list, train.seed and train.device added.
EVAL10 = "train.eval_every=10"  # 20 to 450 evaluations on these lists instead of 4 to 24: best.pt picked finely
SETTINGS: dict[str, tuple[str, list[str]]] = {
    "default": ("default", []),
    "eval10": ("default", [EVAL10]),
    "batch16": ("default", ["train.batch_size=16", EVAL10]),
    "e300": ("default", ["train.epochs=300", EVAL10]),
    "d0.3": ("default", ["model.dropout=0.3", EVAL10]),
    "d0.7": ("default", ["model.dropout=0.7", EVAL10]),
    "b16-d0.7": ("default", ["train.batch_size=16", "model.dropout=0.7", EVAL10]),
    "h64": ("default", ["model.embedding_dim=32", "model.hidden_size=64", EVAL10]),
    "h64-e300": ("default", ["model.embedding_dim=32", "model.hidden_size=64", "train.epochs=300", EVAL10]),
    "h32": ("default", ["model.embedding_dim=16", "model.hidden_size=32", EVAL10]),
    "h256-d0.7": ("default", ["model.hidden_size=256", "model.dropout=0.7", EVAL10]),
    "small": ("small", []),  # configs/small.yaml as committed
}
MEASURED = ["default", "batch16", "d0.7", "b16-d0.7"]  # --settings when none are named


def names_file(path: Path | None) -> Callable[[], list[str]]:
    return lambda: read_names(path, lowercase=False)


def subset(build: Callable[[], list[str]], size: int, seed: int = 0) -> Callable[[], list[str]]:
    """`size` names of the list `build` gives, chosen by `seed`."""
    return lambda: split_test(build(), size, seed)[1]


LISTS: dict[str, tuple[str, Callable[[], list[str]]]] = {
    "dinos-100": ("100 random names of data/dinos.txt", subset(names_file(bundled_file("data/dinos.txt")), 100)),
    "dinos-300": ("300 random names of data/dinos.txt", subset(names_file(bundled_file("data/dinos.txt")), 300)),
    "names-100": ("100 random names of ../shared/data/names.txt", subset(names_file(DEFAULT_NAMES), 100)),
    "names-300": ("300 random names of ../shared/data/names.txt", subset(names_file(DEFAULT_NAMES), 300)),
    "fi-cities": ("faker address.fi_FI cities (Finnish municipalities)", faker_names("address.fi_FI", "cities")),
    "us-first": ("faker person.en_US first_names (US first names)", faker_names("person.en_US", "first_names")),
    "us-first-300": ("300 random names of us-first", subset(faker_names("person.en_US", "first_names"), 300)),
    "us-last": ("faker person.en_US last_names (US surnames)", faker_names("person.en_US", "last_names")),
    "at-first": ("faker person.de_AT first_names (Austrian first names)", faker_names("person.de_AT", "first_names")),
}
CASE_LISTS = ["us-first-300", "us-first", "at-first"]


def repetitiveness(names: Sequence[str]) -> float:
    """Share of the distinct `names` whose last SUFFIX characters end at least CROWD of the others (see above)."""
    distinct = set(names)
    if len(distinct) < 2:
        return 0.0
    endings = Counter(name[-SUFFIX:] for name in distinct)
    crowd = CROWD * (len(distinct) - 1)
    return sum(endings[name[-SUFFIX:]] - 1 >= crowd for name in distinct) / len(distinct)


def stutter(names: Sequence[str]) -> float:
    """Share of `names` that say a chunk again at once (STUTTER)."""
    return sum(bool(STUTTER.search(name)) for name in names) / max(len(names), 1)


def capitalised(names: Sequence[str]) -> float:
    """Share of `names` written 'Capitalised': an upper-case first letter, the rest lower case."""
    return sum(name[:1].isupper() and name[1:] == name[1:].lower() for name in names) / max(len(names), 1)


def sample_figures(generator: Generator, samples: int, temperature: float) -> dict:
    """Novelty and uniqueness as `dinogen.evaluate` defines them, at `temperature`, and repetitiveness."""
    drawn = generator.sample(samples, temperature=temperature, seed=0)
    return {
        "novelty": sum(name not in generator.known_names for name in drawn) / len(drawn),
        "uniqueness": len(set(drawn)) / len(drawn),
        "repetitiveness": repetitiveness(drawn),
        "stutter": stutter(drawn),
        "mean_length": sum(map(len, drawn)) / len(drawn),
        "capitalised": capitalised(drawn),
        "names": drawn[:10],
    }


def filtered_figures(generator: Generator, samples: int, temperature: float) -> dict:
    """What --unique --novel does: the share of plain samples it keeps, and how repetitive its names are."""
    plain = generator.sample(samples, temperature=temperature, seed=0)
    seen: set[str] = set()
    kept = 0
    for name in plain:
        kept += name not in generator.known_names and name not in seen
        seen.add(name)
    try:
        names = generator.sample(samples, temperature=temperature, seed=0, unique=True, novel=True)
    except NotEnoughNames as err:
        names = err.names
    return {"kept": kept / samples, "found": len(names), "repetitiveness": repetitiveness(names), "names": names[:10]}


def position_losses(generator: Generator, names: Sequence[str]) -> dict:
    """Test loss (nats per predicted position) over all positions, at the first character, and after it."""
    data = EncodedNames([generator.normalize(name) for name in names], generator.vocab, generator.device)
    total = first = 0.0
    with torch.inference_mode():
        for inputs, targets in data.batches(512):
            logits, _ = generator.model(inputs)  # (B, T, V)
            loss = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
            )  # (B, T)
            total += loss.sum().item()
            first += loss[:, 0].sum().item()
    rest_positions = data.num_chars - len(data)
    return {"loss": total / data.num_chars, "first": first / len(data), "after_first": (total - first) / rest_positions}


def train_one(
    args, setting: str, train_names: list[str], test: list[str], lowercase: bool, seed: int, tmp: Path
) -> dict:
    config_name, overrides = SETTINGS[setting]
    train_file = tmp / "train.txt"
    train_file.write_text("\n".join(train_names) + "\n", encoding="utf-8")
    overrides = [*overrides, f"data.path={train_file}", f"data.lowercase={str(lowercase).lower()}",
                 f"train.seed={seed}", "train.device=cpu"]  # fmt: skip
    config = load_config(REPO / "configs" / f"{config_name}.yaml", overrides)
    run = Run(config, tmp / "run")
    run.prepare_dir(overwrite=True)
    run.fit()
    generator = Generator.from_checkpoint(run.run_dir / "best.pt", device="cpu")
    last = Generator.from_checkpoint(run.run_dir / "last.pt", device="cpu")
    test_normalized = [generator.normalize(name) for name in test]
    result = {
        "setting": setting,
        "seed": seed,
        "lowercase": lowercase,
        "overrides": overrides,
        "parameters": run.model.num_parameters(),
        "vocab": len(generator.vocab),  # characters plus the boundary token
        "steps": run.trainer.step,
        "best_step": [evaluation["step"] for evaluation in read_metrics(run.run_dir) if evaluation["is_best"]][-1],
        "test_loss": mean_loss(generator.model, EncodedNames(test_normalized, generator.vocab)),
        "last_test_loss": mean_loss(last.model, EncodedNames(test_normalized, last.vocab)),
        "positions": position_losses(generator, test),
        "temperatures": {str(t): sample_figures(generator, args.samples, t) for t in args.temperatures},
    }
    if args.filters:
        result["unique_novel"] = filtered_figures(generator, args.samples, args.temperatures[0])
    return result


def mean(runs: list[dict], get: Callable[[dict], float]) -> float:
    return statistics.fmean(get(run) for run in runs)


def settings_experiment(args, lists: dict[str, list[str]], tmp: Path) -> dict:
    results: dict[str, dict] = {}
    for list_name, names in lists.items():
        train_names, test = split_list([name.lower() for name in names], args.test_fraction, args.test_seed)
        runs = []
        for setting in args.settings:
            for seed in args.seeds:
                print(f"{list_name}: {setting}, seed {seed}", file=sys.stderr)
                runs.append(train_one(args, setting, train_names, test, True, seed, tmp))
        results[list_name] = {"names": len(names), "train": len(train_names), "test": len(test),
                              "reference_repetitiveness": repetitiveness(train_names),
                              "reference_stutter": stutter(train_names), "runs": runs}  # fmt: skip
        print_list_table(list_name, results[list_name], args)
    return results


LIST_FIGURES = ("novelty", "uniqueness", "repetitiveness", "stutter")  # each list's sample figures, in its tables


def sample_cells(runs: list[dict], temperature: str, keys: Sequence[str]) -> list[str]:
    """The runs' mean sample figures `keys` at `temperature`, as percentages."""
    return [fmt_pct(mean(runs, lambda r, k=k: r["temperatures"][temperature][k])) for k in keys]


def print_list_table(list_name: str, result: dict, args) -> None:
    t = str(args.temperatures[0])
    headers = ["setting", "params", "steps", "best step", "test loss", "sd", "last.pt loss"]
    headers += [f"novelty T={t}", f"unique T={t}", f"repetitive T={t}", f"stutter T={t}"]
    if args.filters:
        headers += ["u+n keeps", "u+n repetitive"]
    rows = []
    for setting in args.settings:
        runs = [run for run in result["runs"] if run["setting"] == setting]
        losses = [run["test_loss"] for run in runs]
        row = [setting, fmt_int(runs[0]["parameters"]), fmt_int(mean(runs, lambda r: r["steps"])),
               fmt_int(mean(runs, lambda r: r["best_step"])), fmt_float(statistics.fmean(losses), 3),
               fmt_float(statistics.stdev(losses), 3) if len(losses) > 1 else "-",
               fmt_float(mean(runs, lambda r: r["last_test_loss"]), 3)]  # fmt: skip
        row += sample_cells(runs, t, LIST_FIGURES)
        if args.filters:
            row += [fmt_pct(mean(runs, lambda r, k=k: r["unique_novel"][k])) for k in ("kept", "repetitiveness")]
        rows.append(row)
    notes = [f"{result['names']} names: {result['train']} train+validation, {result['test']} test; "
             f"the training names' own repetitiveness: {fmt_pct(result['reference_repetitiveness'])}, "
             f"stutter: {fmt_pct(result['reference_stutter'])}",
             f"means over train.seed {', '.join(map(str, args.seeds))} (sd: of the test loss); "
             f"{args.samples:,} samples per figure"]  # fmt: skip
    print_table(f"{list_name}: test loss of best.pt (nats/char) and samples", headers, rows, notes)
    if len(args.temperatures) > 1:
        headers = ["setting", *(f"T={t}: novel / unique / repetitive / stutter" for t in args.temperatures)]
        rows = []
        for setting in args.settings:
            runs = [run for run in result["runs"] if run["setting"] == setting]
            rows.append([setting, *(" / ".join(sample_cells(runs, str(t), LIST_FIGURES)) for t in args.temperatures)])
        print_table(f"{list_name}: temperature", headers, rows)
    for setting in args.settings:
        first = next(run for run in result["runs"] if run["setting"] == setting)
        print(f"  {setting} (seed {first['seed']}), T={t}: {', '.join(first['temperatures'][t]['names'])}")


def case_experiment(args, lists: dict[str, list[str]], tmp: Path) -> dict:
    results: dict[str, dict] = {}
    for list_name in CASE_LISTS:
        names = lists[list_name]
        train_names, test = split_list(names, args.test_fraction, args.test_seed)
        runs = []
        for setting in args.settings:
            for seed in args.seeds:
                for lowercase in (True, False):
                    print(f"{list_name}: {setting}, lowercase={lowercase}, seed {seed}", file=sys.stderr)
                    runs.append(train_one(args, setting, train_names, test, lowercase, seed, tmp))
        results[list_name] = {"names": len(names), "train": len(train_names), "test": len(test),
                              "capitalised": capitalised(names), "runs": runs}  # fmt: skip
        print_case_table(list_name, results[list_name], args)
    return results


def print_case_table(list_name: str, result: dict, args) -> None:
    t = str(args.temperatures[0])
    headers = ["setting", "case", "vocab", "test loss", "first char", "after first", "last.pt loss"]
    headers += [f"novelty T={t}", f"unique T={t}", f"repetitive T={t}", f"Capitalised T={t}"]
    rows = []
    for setting in args.settings:
        for lowercase in (True, False):
            runs = [r for r in result["runs"] if r["setting"] == setting and r["lowercase"] == lowercase]
            row = [setting, "folded" if lowercase else "kept", fmt_int(runs[0]["vocab"]),
                   fmt_float(mean(runs, lambda r: r["positions"]["loss"]), 3),
                   fmt_float(mean(runs, lambda r: r["positions"]["first"]), 3),
                   fmt_float(mean(runs, lambda r: r["positions"]["after_first"]), 3),
                   fmt_float(mean(runs, lambda r: r["last_test_loss"]), 3)]  # fmt: skip
            row += sample_cells(runs, t, ("novelty", "uniqueness", "repetitiveness", "capitalised"))
            rows.append(row)
    notes = [f"{result['names']} names, {fmt_pct(result['capitalised'])} of them 'Capitalised' (first letter upper, "
             f"the rest lower); {result['train']} train+validation, {result['test']} test",
             "loss in nats per predicted position over the same test names: all positions (characters and the end), "
             "the first character alone, and every position after it"]  # fmt: skip
    print_table(f"{list_name}: folding case (data.lowercase) or keeping it", headers, rows, notes)
    for run in result["runs"]:
        if run["seed"] == args.seeds[0]:
            case = "folded" if run["lowercase"] else "kept"
            print(f"  {run['setting']}, {case}, T={t}: {', '.join(run['temperatures'][t]['names'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", nargs="?", choices=["settings", "case"], default="settings")
    parser.add_argument("--lists", nargs="+", choices=list(LISTS), help="default: all (case: CASE_LISTS)")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), help="default: MEASURED (case: default)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="train.seed of each run")
    parser.add_argument("--samples", type=int, default=1000, help="names drawn per figure")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.8], help="the first one is the main")
    parser.add_argument("--filters", action="store_true", help="also sample with unique=True, novel=True")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--test-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    case = args.experiment == "case"
    args.lists = args.lists or (CASE_LISTS if case else list(LISTS))
    args.settings = args.settings or (["default"] if case else MEASURED)
    import faker

    env = machine(torch.device("cpu"))
    print_machine(f"dinogen benchmark: small_lists.py ({args.experiment}), faker {faker.VERSION}", env)
    lists = {name: LISTS[name][1]() for name in (CASE_LISTS if case else args.lists)}
    for name, names in lists.items():
        print(f"# {name}: {len(names):,} names, {LISTS[name][0]}; e.g. {', '.join(names[:5])}")
    with tempfile.TemporaryDirectory(prefix="dinogen-small-") as tmp:
        run = case_experiment if case else settings_experiment
        results = run(args, lists, Path(tmp))
    if args.json:
        report = {"args": vars(args), "environment": env, "faker_version": faker.VERSION, "lists": results}
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
