"""Behaviour that must differ between the base kernel and the series: the one
place where intended differences are listed.  The differential check
(tests/run.py) requires every fact recorded on the series kernel to equal the
base kernel's, transformed by the rules of the features listed in
SERIES_FEATURES, so a difference that is not listed here fails, and so does a
listed one that does not happen.

A patch that changes what users see adds its feature to SERIES_FEATURES (and,
if new, its rule to RULES) in the same commit that updates patches/.
"""

# Features the exported series (patches/) has.  Empty series: none.
SERIES_FEATURES = set()

# feature -> function(scenario, key, base_value) -> series value
RULES = {}


def series_value(scen, key, base_value, series_has=SERIES_FEATURES):
    value = base_value
    for feature in sorted(series_has):
        value = RULES[feature](scen, key, value)
    return value


def features():
    return set(SERIES_FEATURES)
