"""Block discovery on hand-made layer graphs: cut points and blocks, worked out by hand."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import pytest

from capsweep.model.blocks import cut_points, find_blocks


@dataclass(frozen=True)
class Graph:
    """A layer graph in topological order; ``edges`` maps a layer to the layers feeding it."""

    order: tuple[str, ...]
    edges: dict[str, list[str]]
    weighted: frozenset[str]

    def has_weights(self) -> dict[str, bool]:
        return {name: name in self.weighted for name in self.order}


def chain(*names: str, weighted: set[str]) -> Graph:
    order = ("input", *names)
    edges = {name: [source] for source, name in pairwise(order)}
    return Graph(order, {"input": [], **edges}, frozenset(weighted))


CHAIN = chain("conv_a", "relu_a", "conv_b", weighted={"conv_a", "conv_b"})
LEADING_PAD = chain("pad", "conv", "relu", weighted={"conv"})
WEIGHTLESS = chain("flatten", "relu", weighted=set())
# input -> conv_1 -> conv_2 -> add, with the identity shortcut input -> add.
DIAMOND = Graph(
    ("input", "conv_1", "conv_2", "add"),
    {"input": [], "conv_1": ["input"], "conv_2": ["conv_1"], "add": ["input", "conv_2"]},
    frozenset({"conv_1", "conv_2"}),
)
# The shortcut is a layer of its own (a projection), placed after the main path.
PROJECTION = Graph(
    ("input", "conv_1", "conv_2", "shortcut", "add"),
    {
        "input": [],
        "conv_1": ["input"],
        "conv_2": ["conv_1"],
        "shortcut": ["input"],
        "add": ["conv_2", "shortcut"],
    },
    frozenset({"conv_1", "conv_2", "shortcut"}),
)
# A plain stem, one residual block, and a plain layer after it.
RESIDUAL_AFTER_CHAIN = Graph(
    ("input", "stem_conv", "stem_relu", "conv_1", "conv_2", "add", "out"),
    {
        "input": [],
        "stem_conv": ["input"],
        "stem_relu": ["stem_conv"],
        "conv_1": ["stem_relu"],
        "conv_2": ["conv_1"],
        "add": ["stem_relu", "conv_2"],
        "out": ["add"],
    },
    frozenset({"stem_conv", "conv_1", "conv_2"}),
)
# Two residual blocks with a plain convolution between them.
TWO_RESIDUALS = Graph(
    ("input", "stem", "a_1", "a_2", "a_add", "mid_conv", "b_1", "b_2", "b_add"),
    {
        "input": [],
        "stem": ["input"],
        "a_1": ["stem"],
        "a_2": ["a_1"],
        "a_add": ["stem", "a_2"],
        "mid_conv": ["a_add"],
        "b_1": ["mid_conv"],
        "b_2": ["b_1"],
        "b_add": ["mid_conv", "b_2"],
    },
    frozenset({"stem", "a_1", "a_2", "mid_conv", "b_1", "b_2"}),
)
# Squeeze-excite: a side path from conv that rescales conv's own output.
SQUEEZE_EXCITE = Graph(
    ("input", "conv", "pool", "fc", "scale", "project"),
    {
        "input": [],
        "conv": ["input"],
        "pool": ["conv"],
        "fc": ["pool"],
        "scale": ["conv", "fc"],
        "project": ["scale"],
    },
    frozenset({"conv", "fc", "project"}),
)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        (CHAIN, [True, True, True, True]),
        (DIAMOND, [True, False, False, True]),
        (PROJECTION, [True, False, False, False, True]),
        (RESIDUAL_AFTER_CHAIN, [True, True, True, False, False, True, True]),
        (TWO_RESIDUALS, [True, True, False, False, True, True, False, False, True]),
        (SQUEEZE_EXCITE, [True, True, False, False, True, True]),
    ],
    ids=["chain", "diamond", "projection", "residual_after_chain", "two_residuals", "se"],
)
def test_cut_points_are_the_layers_no_edge_jumps_over(graph: Graph, expected: list[bool]) -> None:
    assert cut_points(graph.order, graph.edges) == expected


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        (DIAMOND, [["conv_1", "conv_2", "add"]]),
        (PROJECTION, [["conv_1", "conv_2", "shortcut", "add"]]),
        (RESIDUAL_AFTER_CHAIN, [["stem_conv", "stem_relu", "conv_1", "conv_2", "add", "out"]]),
        (
            TWO_RESIDUALS,
            [["stem", "a_1", "a_2", "a_add", "mid_conv"], ["b_1", "b_2", "b_add"]],
        ),
        (SQUEEZE_EXCITE, [["conv", "pool", "fc", "scale", "project"]]),
    ],
    ids=["diamond", "projection", "residual_after_chain", "two_residuals", "se"],
)
def test_find_blocks_groups_each_branch_with_the_plain_layers_around_it(
    graph: Graph, expected: list[list[str]]
) -> None:
    assert find_blocks(graph.order, graph.edges, graph.has_weights()) == expected


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        (CHAIN, [["conv_a", "relu_a"], ["conv_b"]]),
        (LEADING_PAD, [["pad", "conv", "relu"]]),
    ],
    ids=["chain", "leading_weightless_layer"],
)
def test_find_blocks_without_branches_gives_one_block_per_weighted_layer(
    graph: Graph, expected: list[list[str]]
) -> None:
    assert find_blocks(graph.order, graph.edges, graph.has_weights()) == expected


def test_find_blocks_without_branches_or_weights_gives_one_block_of_every_layer() -> None:
    assert find_blocks(WEIGHTLESS.order, WEIGHTLESS.edges, WEIGHTLESS.has_weights()) == [
        ["flatten", "relu"]
    ]
