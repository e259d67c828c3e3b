"""Counter-based random numbers: the uniform number of name i at step t is a hash of (seed, i, t).

A shared torch.Generator would make name i depend on the names drawn before it in its batch; hashing
the counters instead makes the stream addressable, so any batch size, any `-n` and any sharding of
the indices give name i the same random numbers. The hash works on 32-bit words held in int64 tensors
(multipliers below 2^31, so no product overflows) and runs on any device.
"""

import torch

from dinogen.limits import reduce_seed

MASK32 = 0xFFFFFFFF


def mix32(x):
    """A 32-bit integer hash (two multiply-xorshift rounds); works on ints and int64 tensors of 32-bit values."""
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & MASK32
    return x ^ (x >> 15)


class RowStreams:
    """The random numbers of draws `first`, `first + step`, `first + 2 step`, ... of the stream of `seed`.

    Seeds are integers of any size, taken modulo 2^64. Each draw gets two independent 32-bit keys (one
    from each half of the seed), so two draws share their numbers only if 64 bits collide.
    """

    def __init__(self, seed: int, first: int = 0, step: int = 1, device: torch.device | str = "cpu"):
        seed = reduce_seed(seed)
        self.seed_words = (mix32(seed & MASK32), mix32((seed >> 32) ^ 0x9E3779B9))
        self.first, self.step, self.device = first, step, torch.device(device)

    def keys(self, start: int, size: int) -> torch.Tensor:
        """(size, 2) keys of the shard's draws start..start+size-1 (global index first + step * draw)."""
        return self.keys_at(torch.arange(start, start + size, dtype=torch.int64, device=self.device))

    def keys_at(self, draws: torch.Tensor) -> torch.Tensor:
        """(b, 2) keys of the shard's draws `draws` (b,) int64, in any order."""
        index = self.first + self.step * draws.to(self.device)
        low, high = index & MASK32, index >> 32
        return torch.stack([mix32(mix32(word ^ low) ^ high) for word in self.seed_words], dim=1)

    @staticmethod
    def uniform(keys: torch.Tensor, step: int) -> torch.Tensor:
        """(b,) float64 numbers in [0, 1), one per row of `keys` (b, 2), for generation step `step`."""
        bits = mix32(mix32(keys[:, 0] ^ mix32(step + 0x5BD1E995)) ^ keys[:, 1])
        return bits.double() * 2.0**-32
