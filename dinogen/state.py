"""Recurrent states and the ways dinogen reshapes them: a tensor (layers, B, H), or an LSTM's pair of them.

Every helper treats both forms alike, so no caller asks which cell it has.
"""

from collections.abc import Callable

import torch

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # (layers, B, H); an LSTM's is (hidden a, cell c)


def zero_state(layers: int, batch: int, hidden: int, like: torch.Tensor, pair: bool) -> State:
    """The state before the first step: zeros (layers, B, H), a pair of them for an LSTM; on `like`'s device."""
    zeros = like.new_zeros(layers, batch, hidden)
    return (zeros, zeros) if pair else zeros


def map_state(function: Callable[..., torch.Tensor], *states: State) -> State:
    """`function` applied to the matching parts of `states` (an LSTM's hidden and cell parts alike)."""
    if isinstance(states[0], tuple):
        return tuple(function(*parts) for parts in zip(*states, strict=True))
    return function(*states)


def repeat_rows(state: State, size: int) -> State:
    """A one-row state repeated for `size` rows."""
    return map_state(lambda part: part.expand(-1, size, -1).contiguous(), state)


def select_rows(state: State, rows: torch.Tensor) -> State:
    """The given rows (b,) of a state."""
    return map_state(lambda part: part.index_select(1, rows), state)


def gather_rows(rows: list[tuple[State, int]]) -> State:
    """One state made of row r of state s for each (s, r) in `rows`."""
    return map_state(
        lambda *parts: torch.stack([part[:, row] for part, (_, row) in zip(parts, rows, strict=True)], dim=1),
        *(state for state, _ in rows),
    )


def split_members(state: State | None, members: int) -> list[State | None]:
    """An ensemble's state as its members' states (stacked on dim 0 in member order)."""
    if state is None:
        return [None] * members
    return [map_state(lambda part, k=k: part.chunk(members)[k], state) for k in range(members)]


def join_members(states: list[State]) -> State:
    """The members' states stacked into the ensemble's."""
    return map_state(lambda *parts: torch.cat(parts), *states)


def layers_of(state: State) -> list:
    """Each layer's state: (B, H), or an LSTM's pair of them."""
    if isinstance(state, tuple):
        return [tuple(parts) for parts in zip(*(part.unbind(0) for part in state), strict=True)]
    return list(state.unbind(0))


def stack_layers(states: list) -> State:
    """The layers' states stacked as torch returns them: (layers, B, H), or a pair of those."""
    return map_state(lambda *parts: torch.stack(parts), *states)
