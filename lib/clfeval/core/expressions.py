"""Custom metrics: safe arithmetic expressions over confusion counts.

A custom metric (``[[metrics.custom]]``) is a name and an expression such as
``tp / (tp + fn)`` or ``(tp - 5 * fp) / p``. The text is parsed once, when the
config is read, by Python's ``ast`` into a tree of a few whitelisted node kinds
(numbers, the names below, ``+ - * / **``, unary minus, comparisons, and the
functions ``min max log sqrt abs exp``); anything else (attribute access, calls
of other names, subscripts, lambdas, strings, exponents above ``MAX_EXPONENT``)
is an ``ExpressionError`` naming the offending token. Nothing is ever passed to
``eval``.

Evaluation is vectorized: each name is a numpy array (one value per threshold),
so the same tree gives the metric at the operating thresholds and its curve
over every occupied bin edge. Division by zero, ``log`` of 0 or a negative
number and other undefined results are NaN (NULL in the tables). Comparisons
give 1.0 or 0.0.

Names (weighted counts equal row counts when there is no weight column):

=================  ========================================================
``tp fp tn fn``    weighted confusion counts at the threshold
``n_tp n_fp ...``  row counts (``n_tp n_fp n_tn n_fn``)
``n p``            total weight, positive weight (``tp + fn``)
``prevalence``     ``p / n``
built-in metrics   ``accuracy precision recall specificity fpr fnr npv f1
                   mcc predicted_positive_rate balanced_accuracy informedness
                   markedness`` at the threshold, and the group's threshold-free
                   ``roc_auc average_precision log_loss brier_score``
=================  ========================================================

Confidence intervals use the delta method: the weighted cells are taken as
``W·π`` with multinomial shares π over the group's ``n`` rows, so
``Var f ≈ (W²/n) · gᵀ(diag π − ππᵀ)g`` with g the gradient of f with respect to
(tp, fp, tn, fn), by forward-mode differentiation of the expression (the
built-in names by their definitions in the cells). An expression that reads a
threshold-free metric or a row count (``n_tp``..), or whose gradient is not
finite, has no interval (NULL).
"""

from __future__ import annotations

import ast
import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

MAX_EXPONENT = 64
MAX_LENGTH = 2000

CELLS = ("tp", "fp", "tn", "fn")
COUNT_NAMES = ("n_tp", "n_fp", "n_tn", "n_fn")
THRESHOLD_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "fpr",
    "fnr",
    "npv",
    "f1",
    "mcc",
    "predicted_positive_rate",
    "balanced_accuracy",
    "informedness",
    "markedness",
)
GROUP_METRICS = ("roc_auc", "average_precision", "log_loss", "brier_score")
NAMES = frozenset(
    (*CELLS, *COUNT_NAMES, "n", "p", "prevalence", *THRESHOLD_METRICS, *GROUP_METRICS)
)

_FUNCTIONS = {
    "min": (2, None),
    "max": (2, None),
    "log": (1, 1),
    "sqrt": (1, 1),
    "abs": (1, 1),
    "exp": (1, 1),
}
_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_COMPARE = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}


class ExpressionError(ValueError):
    """An expression outside the grammar; the message names the offending token."""


# The parsed tree: ("num", value) | ("name", name) | ("neg", node)
# | ("op", symbol, left, right) | ("cmp", symbol, left, right) | ("call", name, args)
Node = tuple


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its text, tree and the names it reads."""

    text: str
    tree: Node
    names: tuple[str, ...]  # sorted: the config's fingerprint must not depend on set order

    @property
    def ratio_parts(self) -> tuple[Expression, Expression] | None:
        """Numerator and denominator when the whole expression is a division."""
        if self.tree[0] == "op" and self.tree[1] == "/":
            return (
                Expression(self.text, self.tree[2], tuple(sorted(_names(self.tree[2])))),
                Expression(self.text, self.tree[3], tuple(sorted(_names(self.tree[3])))),
            )
        return None

    def evaluate(self, values: dict[str, np.ndarray | float]) -> np.ndarray:
        """The value for each element of the arrays in ``values`` (NaN: undefined)."""
        with np.errstate(all="ignore"):
            out = np.atleast_1d(np.asarray(_evaluate(self.tree, values), dtype=float))
        return np.where(np.isfinite(out), out, np.nan)


def parse_expression(text: str) -> Expression:
    """Parse ``text`` into an Expression, or raise ExpressionError naming the
    token that is not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("an expression is required")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters")
    try:
        parsed = ast.parse(text.strip(), mode="eval")
    except (RecursionError, MemoryError):
        raise ExpressionError("nested too deeply") from None
    except SyntaxError as exc:
        where = (
            f" near {exc.text.strip()[exc.offset - 1 :][:20]!r}" if exc.text and exc.offset else ""
        )
        raise ExpressionError(f"not a valid expression{where}") from None
    try:
        tree = _convert(parsed.body)
    except RecursionError:
        raise ExpressionError("nested too deeply") from None
    return Expression(text.strip(), tree, tuple(sorted(_names(tree))))


def _convert(node: ast.AST) -> Node:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExpressionError(f"{node.value!r}: only numbers are allowed as constants")
        return ("num", float(node.value))
    if isinstance(node, ast.Name):
        if node.id not in NAMES:
            raise ExpressionError(
                f"{node.id!r}: unknown name (allowed: {', '.join(sorted(NAMES))})"
            )
        return ("name", node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _convert(node.operand)
        return ("neg", inner) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        symbol = _BINARY[type(node.op)]
        right = _convert(node.right)
        if symbol == "**" and (right[0] != "num" or abs(right[1]) > MAX_EXPONENT):
            raise ExpressionError(
                f"'**': the exponent must be a number of at most {MAX_EXPONENT} in size"
            )
        return ("op", symbol, _convert(node.left), right)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        symbol = _COMPARE[type(node.ops[0])]
        return ("cmp", symbol, _convert(node.left), _convert(node.comparators[0]))
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in _FUNCTIONS or node.keywords:
            shown = name or type(node.func).__name__
            raise ExpressionError(f"{shown!r}: not an allowed function ({', '.join(_FUNCTIONS)})")
        least, most = _FUNCTIONS[name]
        if len(node.args) < least or (most is not None and len(node.args) > most):
            raise ExpressionError(f"{name}(): wrong number of arguments")
        return ("call", name, tuple(_convert(a) for a in node.args))
    token = {
        ast.Attribute: "attribute access ('.')",
        ast.Subscript: "subscripts ('[...]')",
        ast.Lambda: "'lambda'",
    }.get(type(node), f"{type(node).__name__.lower()} ({ast.unparse(node)[:30]!r})")
    raise ExpressionError(f"{token}: not allowed")


def _names(tree: Node) -> frozenset[str]:
    kind = tree[0]
    if kind == "name":
        return frozenset([tree[1]])
    if kind == "num":
        return frozenset()
    if kind == "neg":
        return _names(tree[1])
    if kind == "call":
        return frozenset().union(*(_names(a) for a in tree[2]))
    return _names(tree[2]) | _names(tree[3])


def _evaluate(tree: Node, values: dict[str, np.ndarray | float]):
    kind = tree[0]
    if kind == "num":
        return tree[1]
    if kind == "name":
        return np.asarray(values[tree[1]], dtype=float)
    if kind == "neg":
        return -_evaluate(tree[1], values)
    if kind == "call":
        args = [np.asarray(_evaluate(a, values), dtype=float) for a in tree[2]]
        name = tree[1]
        if name == "min":
            return np.minimum.reduce(np.broadcast_arrays(*args))
        if name == "max":
            return np.maximum.reduce(np.broadcast_arrays(*args))
        x = args[0]
        if name == "log":
            return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), np.nan)
        if name == "sqrt":
            return np.where(x >= 0, np.sqrt(np.where(x >= 0, x, 0.0)), np.nan)
        return np.abs(x) if name == "abs" else np.exp(x)
    left, right = _evaluate(tree[2], values), _evaluate(tree[3], values)
    symbol = tree[1]
    if kind == "cmp":
        result = {
            "<": np.less,
            "<=": np.less_equal,
            ">": np.greater,
            ">=": np.greater_equal,
            "==": np.equal,
            "!=": np.not_equal,
        }[symbol](left, right)
        return np.asarray(result, dtype=float)
    if symbol == "+":
        return np.add(left, right)
    if symbol == "-":
        return np.subtract(left, right)
    if symbol == "*":
        return np.multiply(left, right)
    if symbol == "/":
        right = np.asarray(right, dtype=float)
        return np.divide(left, np.where(right == 0, np.nan, right))
    return np.power(np.asarray(left, dtype=float), right)


@dataclass(frozen=True)
class CustomMetric:
    """``[[metrics.custom]]``: ``name``, ``expression`` and the optional
    ``optimize`` ("max" or "min"), which adds ``recommended_threshold_<name>``."""

    name: str
    expression: Expression
    optimize: str | None = None


# The built-in threshold metrics as expressions of the cells: ``count_values``
# evaluates them and the interval's gradient differentiates them, so each formula
# is written once here (the same as ``core.binary.threshold_metrics``). MCC's
# denominator is a product of two square roots: no product of four sums, which
# would overflow for extreme weights.
_DEFINITIONS = {
    "n": "tp + fp + tn + fn",
    "p": "tp + fn",
    "prevalence": "(tp + fn) / (tp + fp + tn + fn)",
    "accuracy": "(tp + tn) / (tp + fp + tn + fn)",
    "precision": "tp / (tp + fp)",
    "recall": "tp / (tp + fn)",
    "specificity": "tn / (tn + fp)",
    "fpr": "fp / (fp + tn)",
    "fnr": "fn / (fn + tp)",
    "npv": "tn / (tn + fn)",
    "f1": "2 * tp / (2 * tp + fp + fn)",
    "mcc": "(tp * tn - fp * fn) / (sqrt((tp + fp) * (tp + fn)) * sqrt((tn + fp) * (tn + fn)))",
    "predicted_positive_rate": "(tp + fp) / (tp + fp + tn + fn)",
    "balanced_accuracy": "(tp / (tp + fn) + tn / (tn + fp)) / 2",
    "informedness": "tp / (tp + fn) + tn / (tn + fp) - 1",
    "markedness": "tp / (tp + fp) + tn / (tn + fn) - 1",
}


@functools.cache
def _definition(name: str) -> Node:
    return _convert(ast.parse(_DEFINITIONS[name], mode="eval").body)


def count_values(
    tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray, counts: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Every threshold-dependent name of the grammar from the weighted cells
    (arrays, one element per threshold) and the row counts ``counts``
    (``n_tp``..``n_fn``); the built-ins by their ``_DEFINITIONS``."""
    cells = {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    derived = {
        name: Expression(text, _definition(name), ()).evaluate(cells)
        for name, text in _DEFINITIONS.items()
    }
    return {**cells, **counts, **derived}


def _differentiate(tree: Node, cells: np.ndarray) -> tuple[float, np.ndarray]:
    """Value and gradient with respect to (tp, fp, tn, fn) at ``cells``, by
    forward-mode differentiation of the tree (exact and deterministic: the same
    cells give the same interval on any cluster). Comparisons have gradient 0."""
    kind = tree[0]
    zero = np.zeros(4)
    if kind == "num":
        return tree[1], zero
    if kind == "name":
        name = tree[1]
        if name in CELLS:
            return float(cells[CELLS.index(name)]), np.eye(4)[CELLS.index(name)]
        return _differentiate(_definition(name), cells)
    if kind == "neg":
        v, d = _differentiate(tree[1], cells)
        return -v, -d
    if kind == "call":
        args = [_differentiate(a, cells) for a in tree[2]]
        name = tree[1]
        if name in ("min", "max"):
            pick = min if name == "min" else max
            return pick(args, key=lambda a: a[0])
        v, d = args[0]
        if name == "log":
            return (math.log(v), d / v) if v > 0 else (math.nan, d * math.nan)
        if name == "sqrt":
            if v < 0:
                return math.nan, d * math.nan
            root = math.sqrt(v)
            return root, d / (2 * root) if root > 0 else d * math.nan
        if name == "abs":
            return abs(v), d * math.copysign(1.0, v)
        e = math.exp(v) if v < 700 else math.inf
        return e, d * e
    (a, da), (b, db) = _differentiate(tree[2], cells), _differentiate(tree[3], cells)
    symbol = tree[1]
    if kind == "cmp":
        return float(_evaluate(("cmp", symbol, ("num", a), ("num", b)), {})), zero
    if symbol == "+":
        return a + b, da + db
    if symbol == "-":
        return a - b, da - db
    if symbol == "*":
        return a * b, da * b + a * db
    if symbol == "/":
        if b == 0:
            return math.nan, zero * math.nan
        return a / b, (da * b - a * db) / (b * b)
    # ** with a constant exponent b (the grammar allows no other)
    if a <= 0 and b != int(b):
        return math.nan, zero * math.nan
    return a**b, b * a ** (b - 1) * da if a != 0 or b >= 1 else da * math.nan


def delta_interval(
    expression: Expression,
    cells: dict[str, float],
    n_rows: int,
    confidence: float,
) -> tuple[float, float] | None:
    """The delta-method interval of ``expression`` at one threshold (module
    docstring): ``cells`` the weighted tp, fp, tn, fn; ``n_rows`` the rows
    behind them. None where the expression reads a threshold-free metric or a
    row count, or the value or gradient is not finite."""
    if set(expression.names) & {*GROUP_METRICS, *COUNT_NAMES} or n_rows <= 0:
        return None
    cell = np.array([cells[c] for c in CELLS], dtype=float)
    total = float(cell.sum())
    if total <= 0:
        return None
    with np.errstate(all="ignore"):
        try:
            centre, gradient = _differentiate(expression.tree, cell)
        except (OverflowError, ZeroDivisionError, ValueError):
            return None
        if not (math.isfinite(centre) and np.isfinite(gradient).all()):
            return None
        shares = cell / total
        # (W²/n)·gᵀ(diag π − ππᵀ)g, on shares: gᵀ diag(π) g − (gᵀπ)², times W²/n
        scaled = gradient * total
        variance = (float(scaled**2 @ shares) - float(scaled @ shares) ** 2) / n_rows
    if not math.isfinite(variance) or variance < 0:
        return None
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    half = z * math.sqrt(variance)
    return centre - half, centre + half
