"""Every bound on what dinogen accepts, in one place; docs/configuration.md and docs/errors.md quote them.

A bound keeps a number from overflowing, a tensor from filling memory and a run from never ending.
"""

MAX_NAME_LENGTH = 1_000  # characters: data.max_length, --min/--max-length; longer lines refuse a file (max_length null)
MAX_PARAMETERS = 100_000_000  # a model's weights and biases: 0.4 GB in fp32, 1.6 GB with gradients and AdamW state
MAX_WIDTH = 16_384  # model.embedding_dim, model.hidden_size and model.label_dim
MAX_LAYERS = 32  # model.num_layers
MAX_MEMBERS = 16  # model.ensemble
MAX_BATCH_SIZE = 65_536  # train.batch_size and sample --batch-size
MAX_STEPS = 10**9  # train.max_steps, warmup_steps and eval_every
MAX_COUNT = 10**6  # train.epochs, patience and plateau_patience
MAX_SECONDS = 30 * 24 * 3600  # train.max_time: 30 days
MAX_NAMES = 10**9  # sample -n and the M of --shard K/M
MAX_ATTEMPTS = 10**12  # sample --max-attempts: samples drawn in all (days at a million a second)
MAX_SAMPLES = 10**6  # evaluate --samples
MAX_TOP_K = 10**6  # sample --top-k: more than any vocabulary
MAX_TEMPERATURE = 100.0  # sample --temperature: above it every allowed character is about equally likely
MAX_LR = 10.0  # train.lr
MAX_WEIGHT_DECAY = 100.0  # train.weight_decay
MAX_GRAD_CLIP = 1e6  # train.grad_clip
MAX_MIN_DELTA = 100.0  # train.min_delta, in nats per character
MAX_AUTOMATON_STATES = 100_000  # sample constraints: their automaton's states (seconds to build, 12 B x vocabulary)
MAX_PATTERN_CHARS = 1_000  # sample --pattern
MAX_PATTERN_NESTING = 50  # groups inside groups in a --pattern
MAX_LABELS = 10_000  # labels of a labelled names file or folder: each has an embedding and its own search
MAX_LABEL_LENGTH = 100  # characters of a label, after normalisation
MAX_SEARCH_PREFIXES = 500_000  # sample --most-likely: prefixes read (minutes, about 3 GB: each keeps its state)

NAMES_FILE_BYTES = 100 * 2**20  # names files: --data, data.val_path, --exclude, score --file, evaluate --data
CONFIG_FILE_BYTES = 2**20  # YAML configs
CHECKPOINT_BYTES = 4 * 2**30  # a model at MAX_PARAMETERS with its optimizer state and names fits
MAX_YAML_DEPTH = 32  # nesting of a YAML config (dinogen's own has 2 levels)
MAX_YAML_NODES = 10_000  # scalars, lists and mappings in a YAML config (dinogen's own has about 30)

SEED_MODULUS = 2**64  # torch's generators take unsigned 64-bit seeds


def reduce_seed(seed: int) -> int:
    """Any integer as a seed torch's generators take: modulo 2^64 (-1 is 2^64 - 1, as torch itself reads it)."""
    return seed % SEED_MODULUS
