"""Published MiT key layouts, written out independently of fer_ros.model.weights, for the tests
that build weight files as the official releases name them."""

import re

# Names of the official SegFormer release, written out here independently of fer_ros.model.weights.
OFFICIAL_FROM_OURS = [
    (r"^stages\.(\d)\.patch_embed\.", lambda m: f"patch_embed{int(m[1]) + 1}."),
    (r"^stages\.(\d)\.blocks\.(\d+)\.", lambda m: f"block{int(m[1]) + 1}.{m[2]}."),
    (r"^stages\.(\d)\.norm\.", lambda m: f"norm{int(m[1]) + 1}."),
    (r"\.mlp\.dwconv\.", ".mlp.dwconv.dwconv."),
]


def rename(state, rules):
    """`state` with each key rewritten by the (pattern, replacement) rules, tensors copied."""
    out = {}
    for key, value in state.items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value.clone()
    return out
