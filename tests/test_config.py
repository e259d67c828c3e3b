import pytest

from dinogen.bundled import bundled_configs, bundled_file
from dinogen.config import Config, ConfigError, apply_overrides, find_config, load_config, read_yaml


def test_defaults_and_partial_sections():
    config = Config.from_dict({"model": {"cell": "lstm"}, "train": {"lr": 1}})
    assert config.model.cell == "lstm"
    assert config.model.hidden_size == Config().model.hidden_size
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"trian": {}}, "unknown config key 'trian' (did you mean 'train'?)"),
        ({"train": {"lrr": 0.1}}, "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
        ({"train": {"lr": "fast"}}, "train.lr must be a number, got a string ('fast')"),
        ({"train": {"epochs": True}}, "train.epochs must be an integer or null"),
        ({"model": {"cell": "transformer"}}, "model.cell must be one of rnn, gru, lstm"),
        ({"model": {"ensemble": 0}}, "model.ensemble must be in [1, 16], got 0"),
        ({"train": {"batch_size": "big"}}, "train.batch_size must be an integer or auto, got a string ('big')"),
        ({"train": {"batch_size": None}}, "train.batch_size must be an integer or auto, got null"),
        ({"train": {"batch_size": 0}}, "train.batch_size must be in [1, 65,536], got 0"),
        ({"train": {"base_batch_size": "auto"}}, "train.base_batch_size must be an integer, got a string ('auto')"),
        ({"train": {"lr": 0}}, "train.lr must be in (0, 10]"),
        ({"model": {"dropout": 1.0}}, "model.dropout must be in [0, 1)"),
        ({"model": {"hidden_size": 0}}, "model.hidden_size must be in [1, 16,384]"),
        ({"data": {"val_fraction": 1}}, "data.val_fraction must be in [0, 1)"),
        (
            {"train": {"epochs": None, "max_steps": None}},
            "train.epochs may be null only when train.max_steps or train.max_time is set",
        ),
        ({"model": [1, 2]}, "config section 'model' must be a mapping"),
        ([1, 2], "a config must be a mapping of sections"),
    ],
)
def test_bad_configs_name_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        Config.from_dict(raw)
    assert message in str(err.value)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="valid keys: model.cell, model.embedding_dim"):
        Config.from_dict({"model": {"size": 3}})


def test_overrides_parse_yaml_values():
    raw = apply_overrides({"train": {"lr": 0.1}}, ["train.lr=0.5", "train.grad_clip=null", "model.cell=lstm"])
    assert raw == {"train": {"lr": 0.5, "grad_clip": None}, "model": {"cell": "lstm"}}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr", "needs the form section.key=value"),
        ("lr=0.1", "must be section.key"),
        ("optim.lr=0.1", "unknown config key 'optim'"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides({}, [override])


def test_invalid_yaml_reports_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: [0.1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+, column \d+"):
        read_yaml(path)


def test_every_bundled_config_loads_and_starts_with_its_command():
    assert {"default", "gru", "lstm", "rnn", "tiny"} <= set(bundled_configs())
    for name in bundled_configs():
        path = bundled_file(f"configs/{name}.yaml")
        load_config(path)
        assert path.read_text(encoding="utf-8").startswith("# "), name
        assert "dinogen train" in path.read_text(encoding="utf-8").splitlines()[0], name


def test_find_config(tmp_path):
    assert find_config("lstm").name == "lstm.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("{}", encoding="utf-8")
    assert find_config(own) == own
    with pytest.raises(ConfigError, match="neither a file nor a bundled config"):
        find_config("nonexistent")


def test_config_round_trips_through_yaml(tmp_path):
    config = Config.from_dict({"model": {"cell": "rnn", "num_layers": 2}, "train": {"grad_clip": None}})
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml(), encoding="utf-8")
    assert load_config(path) == config


def test_numbers_without_a_dot_are_numbers_and_quoted_numbers_are_text():
    raw = apply_overrides({}, ["train.lr=1e-3", "train.min_delta=5E-4"])
    assert raw["train"]["lr"] == 0.001  # read as YAML 1.2 does; YAML 1.1 would leave it text
    config = Config.from_dict(raw)
    assert config.train.lr == 0.001 and config.train.min_delta == 0.0005
    for quoted in ["'0.1'", '"1e-3"']:
        with pytest.raises(ConfigError, match="train.lr must be a number, got a string"):
            Config.from_dict(apply_overrides({}, [f"train.lr={quoted}"]))
    with pytest.raises(ConfigError, match="train.lr must be a number"):
        Config.from_dict({"train": {"lr": "1e-3x"}})
    with pytest.raises(ConfigError, match="must be at least 1, got null|may be null only"):
        Config.from_dict({"train": {"epochs": None, "max_steps": None}})


def test_an_override_without_its_section_gets_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'train.epochs'"):
        apply_overrides({}, ["epochs=5"])
