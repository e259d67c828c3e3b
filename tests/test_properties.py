"""Property tests: arbitrary input either works or fails with the project's own error."""

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dinogen.config import Config, ConfigError
from dinogen.data import Vocab, read_names
from dinogen.errors import DinogenError

line_endings = st.sampled_from(["\n", "\r\n", "\r", "\u2028", ""])
texts = st.lists(st.tuples(st.text(max_size=20), line_endings), max_size=30).map(
    lambda parts: "".join(text + end for text, end in parts)
)


@settings(max_examples=200, deadline=None)
@given(text=texts, lowercase=st.booleans(), bom=st.booleans())
def test_any_text_file_reads_into_a_valid_dataset_or_a_clear_error(tmp_path_factory, text, lowercase, bom):
    path = tmp_path_factory.mktemp("prop") / "names.txt"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8", errors="surrogatepass"))
    try:
        names = read_names(path, lowercase=lowercase)
    except DinogenError as err:
        assert str(err)
        return
    assert names and len(names) == len(set(names))
    assert all(name == name.strip() and name for name in names)
    vocab = Vocab.from_names(names)
    for name in names:
        assert vocab.decode(vocab.encode(name)) == name


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200))
def test_any_bytes_read_into_names_or_a_clear_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("bytes") / "names.txt"
    path.write_bytes(raw)
    try:
        assert read_names(path)
    except DinogenError as err:
        assert str(err)


yaml_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
section_names = st.sampled_from(["data", "model", "train", "other"])
key_names = st.sampled_from(
    ["path", "cell", "hidden_size", "dropout", "lr", "epochs", "max_steps", "seed", "typo"]
) | st.text(max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    raw=st.dictionaries(section_names, st.dictionaries(key_names, yaml_values, max_size=4) | yaml_values, max_size=3)
)
def test_any_yaml_mapping_gives_a_config_or_a_config_error(raw):
    text = yaml.safe_dump(raw)
    try:
        config = Config.from_dict(yaml.safe_load(text))
    except ConfigError as err:
        assert str(err)
        return
    assert Config.from_dict(config.to_dict()) == config
