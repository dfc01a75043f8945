"""Refuse `regex` checks Python reads but DuckDB's engine (RE2) does not, or reads otherwise, at load.

Source checks run in DuckDB, whose `regexp_full_match` is RE2: no lookarounds, backreferences, atomic
groups, possessive quantifiers, conditionals or comments; no `\\Z`, `\\u`, `\\U`, `\\N{...}` escapes or
`[\\b]`; only the flags i, m, s, U; no repetition count above 1000; and `{,n}` is plain text to RE2.
"""

from __future__ import annotations

import re
import warnings

_REPEAT = re.compile(r"\{(\d*)(,(\d*))?\}")
_GROUPS = {"(?=": "a lookahead (?=...)", "(?!": "a negative lookahead (?!...)", "(?<=": "a lookbehind (?<=...)",
           "(?<!": "a negative lookbehind (?<!...)", "(?>": "an atomic group (?>...)", "(?#": "a comment (?#...)",
           "(?P=": "a named backreference (?P=name)", "(?(": "a conditional (?(...)...)"}
_ESCAPES = {"Z": "\\Z (use $: RE2's $ is the end of the text)", "u": "\\u escapes (write the character itself)",
            "U": "\\U escapes (write the character itself)", "N": "\\N{...} escapes (write the character itself)"}
RE2_FLAGS = "imsU"
MAX_REPEAT = 1000


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a DuckDB (RE2) regex check, or None when it can."""
    try:
        with warnings.catch_warnings():   # RE2's [[:alpha:]] makes Python warn of a nested set
            warnings.simplefilter("ignore")
            re.compile(pattern)
    except re.error as exc:
        return f"is invalid: {exc}"
    except RecursionError:
        return "is nested too deeply"
    problem = _re2_problem(pattern)
    return f"uses {problem}, which DuckDB's regex engine (RE2) does not support" if problem else None


def _re2_problem(pattern: str) -> str | None:
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            follow = pattern[i + 1:i + 2]
            if follow.isdigit() and follow != "0":
                return f"a backreference \\{follow}"
            if follow in _ESCAPES:
                return _ESCAPES[follow]
            i += 2
            continue
        if char == "[":
            i, problem = _skip_class(pattern, i)
            if problem:
                return problem
            continue
        if char == "(" and pattern.startswith("(?", i):
            problem = _group_problem(pattern, i)
            if problem:
                return problem
            i += 2
            continue
        end = i + 1
        if char == "{":
            match = _REPEAT.match(pattern, i)
            if match is None:
                i += 1
                continue
            low, comma, high = match.group(1), match.group(2), match.group(3)
            if not low and comma:
                return f"{match.group()} (RE2 reads it as text: write {{0,{high}}})"
            if any(int(x) > MAX_REPEAT for x in (low, high) if x):
                return f"a repetition count above {MAX_REPEAT} ({match.group()})"
            end = match.end()
        elif char not in "*+?":
            i += 1
            continue
        if pattern[end:end + 1] == "+":
            return f"a possessive quantifier ({pattern[i:end + 1]})"
        i = end + (pattern[end:end + 1] == "?")   # a lazy quantifier's `?` is part of it
    return None


def _skip_class(pattern: str, start: int) -> tuple[int, str | None]:
    """The index after the character class at `start` (read as RE2 does: `[:alpha:]` inside is one unit)."""
    i = start + 1
    if pattern[i:i + 1] == "^":
        i += 1
    if pattern[i:i + 1] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        if pattern[i] == "\\":
            follow = pattern[i + 1:i + 2]
            if follow.isdigit() and follow != "0":
                return i, f"\\{follow} in a character class (an octal escape to Python, an error to RE2)"
            if follow == "b":
                return i, "[\\b] (write \\x08 for a backspace)"
            if follow in _ESCAPES:
                return i, _ESCAPES[follow]
            i += 2
            continue
        if pattern.startswith("[:", i) and ":]" in pattern[i + 2:]:
            i = pattern.index(":]", i + 2) + 2
            continue
        i += 1
    return i + 1, None


def _group_problem(pattern: str, start: int) -> str | None:
    for prefix, name in _GROUPS.items():
        if pattern.startswith(prefix, start):
            return name
    if pattern.startswith(("(?P<", "(?:"), start):
        return None
    flags = re.match(r"\(\?([A-Za-z-]*)[:)]", pattern[start:])
    if flags:
        wrong = [f for f in flags.group(1) if f != "-" and f not in RE2_FLAGS]
        if wrong:
            return f"the flag {wrong[0]} (RE2 takes {', '.join(RE2_FLAGS)})"
    return None
