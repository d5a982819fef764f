"""A synthetic corpus with planted structure: 8 roles x 2 genders of target words, each line one
target with context words drawn from its gender's and its role's pools (80% / 60% of the time,
else from the other pools). log X(target, context) is then additive in gender and role, so the
learned vectors satisfy analogies such as king - man + woman = queen by construction."""

from __future__ import annotations

import random

ROLES = {
    "common": ("man", "woman"),
    "royal": ("king", "queen"),
    "child": ("boy", "girl"),
    "parent": ("father", "mother"),
    "sibling": ("brother", "sister"),
    "offspring": ("son", "daughter"),
    "young_royal": ("prince", "princess"),
    "elder": ("grandfather", "grandmother"),
}
GENDER_CONTEXT = (("he", "him", "his"), ("she", "her", "hers"))
ROLE_CONTEXT = {role: tuple(f"{role}_{k}" for k in range(3)) for role in ROLES}
TARGETS = [w for pair in ROLES.values() for w in pair]


def planted_lines(n_lines: int = 10000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    every_role_word = [w for words in ROLE_CONTEXT.values() for w in words]
    lines = []
    for _ in range(n_lines):
        role = rng.choice(list(ROLES))
        g = rng.randint(0, 1)
        tokens = [ROLES[role][g]]
        for _ in range(4):
            tokens.append(rng.choice(GENDER_CONTEXT[g] if rng.random() < 0.8 else GENDER_CONTEXT[1 - g]))
            tokens.append(rng.choice(ROLE_CONTEXT[role] if rng.random() < 0.6 else every_role_word))
        rng.shuffle(tokens)
        lines.append(" ".join(tokens))
    return lines


def planted_analogies() -> list[tuple[str, str, str, str]]:
    """Every "a b c d" with a:b = c:d that holds by construction (gender swap across two roles)."""
    return [
        (ROLES[r1][g], ROLES[r1][1 - g], ROLES[r2][g], ROLES[r2][1 - g])
        for r1 in ROLES
        for r2 in ROLES
        if r1 != r2
        for g in (0, 1)
    ]
