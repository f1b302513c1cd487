"""Mutation fuzzing of the DA JSON term scanner, compiled with numba's bounds checking.

The scanner walks request bytes by index, so an off-by-one there reads past the body (numba
does not check indices by default). Here valid DA bodies are generated, then broken byte by byte
(truncated, flipped, cut, stuffed with quotes, backslashes, brackets, digit runs and deep
nesting), and every result is held against the general path:

* the scanner raises nothing: with ``NUMBA_BOUNDSCHECK=1`` an out-of-bounds access is an
  IndexError instead of a silent read;
* when it answers, the body is valid JSON (orjson, the general path's parser) exactly when the
  returned ``rest`` is, and then ``rest`` is the body with ``binary_polynomial.terms`` emptied and
  the columns are that array's coefficients and indices (-1 where absent);
* ``parse_da_request`` gives the same request, or the same error, with and without the scanner.

Bounds checking is a compile flag that numba's on-disk cache does not key on (its index holds
the signature, the CPU and the bytecode's hash), so the fuzzing runs in a subprocess with its
own ``NUMBA_CACHE_DIR``: it neither reuses the unchecked kernels nor leaves checked ones behind
for the service. A canary read past the end of an array proves the flag took hold.

Run by hand: ``NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=$(mktemp -d) python -m
tests.service.engine.test_term_scan_fuzz --mutations 20000 --seed 7``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
SEED = 20240611
MUTATIONS = 8000


def test_scanner_survives_mutated_bodies_under_boundscheck(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "tests.service.engine.test_term_scan_fuzz",
                           "--seed", str(SEED), "--mutations", str(MUTATIONS)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["failures"] == 0
    assert summary["bodies"] >= MUTATIONS
    # Both outcomes, and mutated bodies the scanner still read, so the contract was exercised.
    assert summary["scanned"] > 100 and summary["stepped_aside"] > 100
    assert summary["scanned_mutants"] > 0 and summary["invalid_json"] > 100


# ------------------------------------------------------------------------------ the fuzzer
# Below runs in the subprocess only: numba must see NUMBA_BOUNDSCHECK before it compiles.

SPACE = [b"", b" ", b"\n", b"\t", b"\r\n  "]
NUMBERS = [b"0", b"-0", b"-0.0", b"1", b"-7", b"2.5", b"1e-3", b"2E+5", b"-7.5E-1", b"3.25e2",
           b"123456789012345678", b"18446744073709551615", b"18446744073709551616",
           b"123456789012345678901234567890", b"1e308", b"4.9e-324", b"0.1"]
SPECIAL = b'"\\[]{},:0123456789eE.+- \x00\xff'


def ws(rng: random.Random) -> bytes:
    return rng.choice(SPACE)


def coefficient(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(NUMBERS)
    if roll < 0.7:
        return repr(rng.uniform(-1e3, 1e3)).encode()
    return str(rng.randint(-10**6, 10**6)).encode()


def term(rng: random.Random) -> bytes:
    c_key = rng.choice([b'"c"', b'"coefficient"'])
    p_key = rng.choice([b'"p"', b'"polynomials"'])
    degree = rng.choice([0, 1, 2, 2, 2])
    big = rng.random() < 0.05
    indices = [str(rng.randint(0, 10**17 if big else 60)).encode() for _ in range(degree)]
    parts = [c_key + ws(rng) + b":" + ws(rng) + coefficient(rng)]
    if degree or rng.random() < 0.5:
        parts.append(p_key + ws(rng) + b":" + ws(rng) + b"[" + ws(rng)
                     + (b"," + ws(rng)).join(indices) + ws(rng) + b"]")
    rng.shuffle(parts)
    return b"{" + ws(rng) + (ws(rng) + b"," + ws(rng)).join(parts) + ws(rng) + b"}"


def body(rng: random.Random) -> bytes:
    """A valid DA body whose binary_polynomial.terms is in the scanner's plain form, with
    look-alike keys, strings and nesting around it."""
    terms = b"[" + ws(rng) + (b"," + ws(rng)).join(term(rng) for _ in range(rng.randint(1, 12))) \
        + ws(rng) + b"]"
    poly = [b'"terms"' + ws(rng) + b":" + ws(rng) + terms]
    if rng.random() < 0.3:
        poly.append(b'"note": [1, {"terms": [2]}, "\\"terms\\": [3]"]')
    rng.shuffle(poly)
    solver = rng.choice([b'"fujitsuDA2": {"number_iterations": 10}', b'"fujitsuDA3": {}',
                         b'"fujitsuDA": {"number_runs": 16}'])
    fields = [b'"binary_polynomial"' + ws(rng) + b":" + ws(rng) + b"{" + b", ".join(poly) + b"}",
              solver]
    if rng.random() < 0.3:
        fields.append(b'"penalty_binary_polynomial": {"terms": [{"c": 1, "p": [0, 1]}]}')
    if rng.random() < 0.3:
        fields.append(b'"x": ["binary_polynomial", {"binary_polynomial": {"terms": []}}, '
                      b'"a\\\\", "\\u0062", [[[{}]]]]')
    rng.shuffle(fields)
    return b"{" + ws(rng) + (b"," + ws(rng)).join(fields) + ws(rng) + b"}"


def position(rng: random.Random, raw: bytes) -> int:
    """A position in the body, mostly inside the terms array (where the scanner reads)."""
    start = raw.find(b'"terms"')
    if start >= 0 and rng.random() < 0.75:
        stop = raw.find(b"]}", start)
        stop = len(raw) if stop < 0 else stop + 2
        return rng.randint(start, stop)
    return rng.randint(0, len(raw))


def mutate(rng: random.Random, raw: bytes) -> bytes:
    at = position(rng, raw)
    kind = rng.randrange(9)
    if kind == 0:  # flip a byte to anything
        if at < len(raw):
            return raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1:]
        return raw + bytes([rng.randrange(256)])
    if kind == 1:  # insert a structural or numeric byte
        return raw[:at] + bytes([rng.choice(SPECIAL)]) + raw[at:]
    if kind == 2:  # replace with a structural or numeric byte
        return raw[:at] + bytes([rng.choice(SPECIAL)]) + raw[at + 1:]
    if kind == 3:  # delete a byte or a run
        return raw[:at] + raw[at + rng.choice([1, 1, 2, 5, 20]):]
    if kind == 4:  # a huge digit run
        return raw[:at] + b"9" * rng.choice([19, 20, 64, 400, 5000]) + raw[at:]
    if kind == 5:  # deep nesting
        depth = rng.choice([3, 50, 2000])
        return raw[:at] + b"[" * depth + (b"]" * depth if rng.random() < 0.5 else b"") + raw[at:]
    if kind == 6:  # a quote, backslash or escape sequence
        return raw[:at] + rng.choice([b'"', b"\\", b'\\"', b"\\u0063", b'"\\', b"\\\\"]) + raw[at:]
    if kind == 7:  # duplicate a slice elsewhere
        a = rng.randrange(len(raw) + 1)
        piece = raw[a:a + rng.randint(1, 40)]
        return raw[:at] + piece + raw[at:]
    return raw[:at]  # truncate


def terms_columns(terms: Any) -> tuple[list[float], list[int], list[int]] | None:
    """The plain-form terms' (coefficients, first, second), or None for any other form."""
    if not isinstance(terms, list) or not terms:
        return None
    coefficients, first, second = [], [], []
    for t in terms:
        if not isinstance(t, dict) or not set(t) <= {"c", "coefficient", "p", "polynomials"}:
            return None
        c_keys = [k for k in ("c", "coefficient") if k in t]
        p_keys = [k for k in ("p", "polynomials") if k in t]
        if len(c_keys) != 1 or len(p_keys) > 1:
            return None
        c = t[c_keys[0]]
        p = t[p_keys[0]] if p_keys else []
        if isinstance(c, bool) or not isinstance(c, int | float) or not isinstance(p, list) \
                or len(p) > 2 or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in p):
            return None
        coefficients.append(float(c))
        first.append(p[0] if p else -1)
        second.append(p[1] if len(p) > 1 else -1)
    return coefficients, first, second


def check(raw: bytes, counts: dict[str, int]) -> str | None:
    """What is wrong with the scanner's answer on ``raw``, or None."""
    import numpy as np
    import orjson

    from service.engine.term_scan import scan_binary_polynomial
    from service.jobs.parsing import InvalidRequestError, parse_da_request

    try:
        scanned = scan_binary_polynomial(raw)
    except Exception:  # IndexError from a bounds-checked kernel, or anything else
        return "the scanner raised:\n" + traceback.format_exc()
    try:
        reference = orjson.loads(raw)
    except orjson.JSONDecodeError:
        counts["invalid_json"] += 1
        reference = None
    if scanned is None:
        counts["stepped_aside"] += 1
    else:
        counts["scanned"] += 1
        try:
            rest = orjson.loads(scanned.rest)
        except orjson.JSONDecodeError:
            rest = None
        if (rest is None) != (reference is None):
            return f"the body parses: {reference is not None}, its rest parses: {rest is not None}"
        if reference is not None:
            try:
                terms = reference["binary_polynomial"]["terms"]
                reference["binary_polynomial"]["terms"] = []
            except (TypeError, KeyError):
                return "scanned a body without binary_polynomial.terms"
            if rest != reference:
                return f"rest is not the body with the terms emptied: {scanned.rest[:300]!r}"
            columns = terms_columns(terms)
            if columns is None:
                return f"scanned terms that are not in the plain form: {terms!r:.300}"
            c, a, b = (np.array(v, dtype=dt) for v, dt in zip(columns, (np.float64, np.int64, np.int64)))
            if not (np.array_equal(c.view(np.int64), scanned.coefficients.view(np.int64))
                    and np.array_equal(a, scanned.first) and np.array_equal(b, scanned.second)):
                return (f"columns differ: {scanned.coefficients}, {scanned.first}, "
                        f"{scanned.second} vs {columns}")

    def parsed(scan_terms: bool) -> Any:
        try:
            req = parse_da_request(raw, "v3", 10_000, scan_terms=scan_terms)
        except InvalidRequestError as exc:
            return f"InvalidRequestError: {exc}"
        except Exception as exc:  # the general path's own bug, reported if the two differ
            return f"{type(exc).__name__}: {exc}"
        p = req.problem
        return (p.num_variables, p.rows.tolist(), p.cols.tolist(), p.values.tobytes(),
                None if p.linear is None else p.linear.tobytes(), p.constant, req.parameters)

    with_scan, without = parsed(True), parsed(False)
    if with_scan != without:
        return f"parse_da_request differs: {str(with_scan)[:300]} vs {str(without)[:300]}"
    return None


def bounds_checked() -> bool:
    """Whether the scanner's kernels were compiled with bounds checking: a read one past the
    end of an array must raise IndexError."""
    import numpy as np

    from service.engine.term_scan import _KEY_BP, _equals

    short = np.frombuffer(b"xxbinary_polynomia", dtype=np.uint8)  # 'l' missing at the end
    try:
        _equals(short, 2, 2 + _KEY_BP.shape[0], _KEY_BP)
    except IndexError:
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--mutations", type=int, default=MUTATIONS)
    args = parser.parse_args(argv)
    if os.environ.get("NUMBA_BOUNDSCHECK") != "1" or not bounds_checked():
        print("the scanner is not compiled with bounds checking (NUMBA_BOUNDSCHECK=1 and a fresh "
              "NUMBA_CACHE_DIR)", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    counts = dict.fromkeys(["bodies", "scanned", "stepped_aside", "invalid_json",
                            "scanned_mutants", "failures"], 0)
    started = time.perf_counter()

    def run(raw: bytes, mutant: bool) -> None:
        counts["bodies"] += 1
        before = counts["scanned"]
        problem = check(raw, counts)
        if mutant and counts["scanned"] > before:
            counts["scanned_mutants"] += 1
        if problem is not None:
            counts["failures"] += 1
            if counts["failures"] <= 10:
                print(f"FAIL on {raw[:2000]!r}:\n{problem}\n", file=sys.stderr)

    for _ in range(3):  # every prefix of a few small bodies
        raw = body(rng)
        for cut in range(len(raw) + 1):
            run(raw[:cut], cut < len(raw))
    for _ in range(args.mutations // 4):
        raw = body(rng)
        run(raw, False)
        for _ in range(3):
            mutant = raw
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                mutant = mutate(rng, mutant)
            run(mutant, mutant != raw)
    counts["seconds"] = round(time.perf_counter() - started, 1)  # type: ignore[assignment]
    print(json.dumps(counts))
    return 1 if counts["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
