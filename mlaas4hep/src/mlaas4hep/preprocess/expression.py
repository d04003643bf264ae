"""Safe pre-processing expressions, e.g. `log(partonE)` or `1<=nJets_square<=16`.

User text is parsed with `ast.parse` (parsing only: nothing is executed) and converted into a small
tree of our own nodes. Only arithmetic, comparisons (chained ones too), boolean operators, numeric
constants, branch names and a whitelist of numpy functions survive the conversion; anything else
(attribute access, subscripts, `__import__`, lambdas, ...) is rejected with a message that says why.
Evaluation is vectorised: every node maps to one numpy/awkward operation over whole arrays.

Operations on constants alone are folded while parsing, with bounds: Python's exact integers would
let `9**9**9` compute for hours on a server's CPU, so a folded constant must stay a finite real
number no larger than a float64 can hold, and an integer power is sized before it is computed.
Field names of expanded records (`branch.field`) are read as one dotted branch name, never as
attribute access.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from mlaas4hep.errors import ExpressionError, did_you_mean

ArrayLike = Any  # ak.Array, numpy array or scalar

MAX_EXPRESSION_LENGTH = 1000
# Folded constants stay within float64 (about 1.8e308): anything larger is inf in the data anyway.
MAX_CONSTANT = float(np.finfo(np.float64).max)

# Elementwise functions: each is applied to whole (flat or jagged) arrays at once.
FUNCTIONS: dict[str, Callable[..., ArrayLike]] = {
    "log": np.log,
    "log10": np.log10,
    "log2": np.log2,
    "log1p": np.log1p,
    "exp": np.exp,
    "expm1": np.expm1,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "fabs": np.fabs,
    "sign": np.sign,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "arcsin": np.arcsin,
    "arccos": np.arccos,
    "arctan": np.arctan,
    "arctan2": np.arctan2,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "arcsinh": np.arcsinh,
    "arccosh": np.arccosh,
    "arctanh": np.arctanh,
    "hypot": np.hypot,
    "minimum": np.minimum,
    "maximum": np.maximum,
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,
    "square": np.square,
    "power": np.power,
}


def _count(array: ArrayLike) -> ArrayLike:
    return ak.num(array, axis=-1)


def _sum(array: ArrayLike) -> ArrayLike:
    return ak.sum(array, axis=-1)


# Reductions turn a jagged branch into one value per event (a flat branch).
REDUCERS: dict[str, Callable[[ArrayLike], ArrayLike]] = {"count": _count, "sum": _sum}

CONSTANTS: dict[str, float] = {"pi": float(np.pi), "e": float(np.e)}

BINARY_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}

COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}

SYMBOLS: dict[type, str] = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
}  # fmt: skip


class Node:
    """A node of a parsed expression; `evaluate` maps it to array operations."""

    def evaluate(self, env: Mapping[str, ArrayLike]) -> ArrayLike:
        raise NotImplementedError

    def names(self) -> set[str]:
        return set()


@dataclass(frozen=True)
class Constant(Node):
    value: float | bool

    def evaluate(self, env: Mapping[str, ArrayLike]) -> ArrayLike:
        return self.value


@dataclass(frozen=True)
class Branch(Node):
    name: str

    def evaluate(self, env: Mapping[str, ArrayLike]) -> ArrayLike:
        return env[self.name]

    def names(self) -> set[str]:
        return {self.name}


@dataclass(frozen=True)
class Apply(Node):
    """An operator or whitelisted function applied to sub-expressions."""

    symbol: str
    function: Callable[..., ArrayLike]
    args: tuple[Node, ...]

    def evaluate(self, env: Mapping[str, ArrayLike]) -> ArrayLike:
        return self.function(*(arg.evaluate(env) for arg in self.args))

    def names(self) -> set[str]:
        return set().union(*(arg.names() for arg in self.args))


def _logical_and(*values: ArrayLike) -> ArrayLike:
    result = values[0]
    for value in values[1:]:
        result = result & value
    return result


def _logical_or(*values: ArrayLike) -> ArrayLike:
    result = values[0]
    for value in values[1:]:
        result = result | value
    return result


def _logical_not(value: ArrayLike) -> ArrayLike:
    return ~value if not isinstance(value, bool) else not value


def _negate(value: ArrayLike) -> ArrayLike:
    return -value


def _identity(value: ArrayLike) -> ArrayLike:
    return value


@dataclass(frozen=True)
class Expression:
    """A parsed, validated expression: the text it came from and its tree."""

    text: str
    root: Node

    @property
    def names(self) -> set[str]:
        """Branch names the expression reads."""
        return self.root.names()

    def evaluate(self, env: Mapping[str, ArrayLike]) -> ArrayLike:
        missing = self.names - set(env)
        if missing:
            name = sorted(missing)[0]
            raise ExpressionError(
                f"expression '{self.text}': unknown branch '{name}'{did_you_mean(name, env)}"
            )
        try:
            with np.errstate(all="ignore"):
                return self.root.evaluate(env)
        except (ValueError, TypeError) as exc:
            raise ExpressionError(f"expression '{self.text}' cannot be evaluated: {exc}") from None


def _bounded(value: Any, text: str) -> float | int | bool:
    """A folded constant, or an error when it is not a finite real number within float64."""
    if isinstance(value, bool):
        return value
    if isinstance(value, complex) or not isinstance(value, int | float):
        raise ExpressionError(f"expression '{text}': a constant part is not a real number")
    if isinstance(value, float) and not np.isfinite(value):
        raise ExpressionError(f"expression '{text}': a constant part is not finite")
    if abs(value) > MAX_CONSTANT:
        raise ExpressionError(
            f"expression '{text}': a constant part exceeds the float64 range (about 1.8e308)"
        )
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return float(value)  # numpy cannot mix larger Python ints with int64 arrays
    return value


def _power_fits(base: float, exponent: float) -> bool:
    """Whether |base|**exponent stays within float64, judged from logarithms, before computing."""
    if exponent <= 0 or abs(base) <= 1:
        return True
    return exponent * np.log10(abs(base)) <= np.log10(MAX_CONSTANT)


def fold(function: Callable[..., Any], args: tuple[Constant, ...], text: str) -> Constant:
    """Compute an operation on constants now, within bounds (see the module docstring)."""
    values = [arg.value for arg in args]
    if function is operator.pow and not _power_fits(*values):
        raise ExpressionError(
            f"expression '{text}': the constant power {values[0]}**{values[1]} exceeds the "
            "float64 range (about 1.8e308)"
        )
    try:
        with np.errstate(all="raise"):
            value = function(*values)
    except (ZeroDivisionError, OverflowError, FloatingPointError, ValueError) as exc:
        raise ExpressionError(f"expression '{text}': a constant part fails: {exc}") from None
    if isinstance(value, np.generic):
        value = value.item()
    return Constant(_bounded(value, text))


class _Converter:
    """Turns a Python AST into our node tree, refusing every construct not listed here."""

    def __init__(self, text: str, known_names: set[str] | None) -> None:
        self.text = text
        self.known_names = known_names

    def fail(self, why: str) -> ExpressionError:
        return ExpressionError(f"expression '{self.text}': {why}")

    def convert(self, node: ast.AST) -> Node:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.fail(self._describe_forbidden(node))
        return method(node)

    def _describe_forbidden(self, node: ast.AST) -> str:
        kinds = {
            ast.Attribute: "attribute access is not allowed (dotted names are record fields)",
            ast.Subscript: "indexing (a[...]) is not allowed",
            ast.Lambda: "lambda is not allowed",
            ast.NamedExpr: "assignment is not allowed",
            ast.IfExp: "conditional expressions are not allowed",
            ast.Starred: "star arguments are not allowed",
        }
        for kind, message in kinds.items():
            if isinstance(node, kind):
                return message
        return f"'{type(node).__name__}' is not allowed in an expression"

    def _Expression(self, node: ast.Expression) -> Node:
        return self.convert(node.body)

    def _Constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool) or (
            isinstance(value, int | float) and not isinstance(value, complex)
        ):
            return Constant(_bounded(value, self.text))
        raise self.fail(f"only numbers are allowed as constants, not {value!r}")

    def _Name(self, node: ast.Name) -> Node:
        name = node.id
        if name.startswith("__"):
            raise self.fail(f"name '{name}' is not allowed")
        if name in CONSTANTS and (self.known_names is None or name not in self.known_names):
            return Constant(CONSTANTS[name])
        if self.known_names is not None and name not in self.known_names:
            hint = did_you_mean(name, self.known_names)
            raise self.fail(f"unknown branch '{name}'{hint}")
        return Branch(name)

    def _UnaryOp(self, node: ast.UnaryOp) -> Node:
        operand = self.convert(node.operand)
        if isinstance(node.op, ast.USub):
            return self._apply("-", _negate, (operand,))
        if isinstance(node.op, ast.UAdd):
            return Apply("+", _identity, (operand,))
        if isinstance(node.op, ast.Not | ast.Invert):
            return Apply("not", _logical_not, (operand,))
        raise self.fail(f"unary operator '{type(node.op).__name__}' is not allowed")

    def _BinOp(self, node: ast.BinOp) -> Node:
        function = BINARY_OPERATORS.get(type(node.op))
        if function is None:
            raise self.fail(f"operator '{type(node.op).__name__}' is not allowed")
        args = (self.convert(node.left), self.convert(node.right))
        return self._apply(SYMBOLS[type(node.op)], function, args)

    def _apply(self, symbol: str, function: Callable[..., Any], args: tuple[Node, ...]) -> Node:
        if all(isinstance(arg, Constant) for arg in args):
            return fold(function, args, self.text)  # type: ignore[arg-type]
        return Apply(symbol, function, args)

    def _Attribute(self, node: ast.Attribute) -> Node:
        """`jet.Pt`: the dotted name of an expanded record field, looked up as one name."""
        parts = [node.attr]
        value: ast.AST = node.value
        while isinstance(value, ast.Attribute):
            parts.append(value.attr)
            value = value.value
        if not isinstance(value, ast.Name) or any(p.startswith("_") for p in [*parts, value.id]):
            raise self.fail(self._describe_forbidden(node))
        return self._Name(ast.Name(".".join([value.id, *reversed(parts)])))

    def _BoolOp(self, node: ast.BoolOp) -> Node:
        args = tuple(self.convert(value) for value in node.values)
        if isinstance(node.op, ast.And):
            return Apply("and", _logical_and, args)
        return Apply("or", _logical_or, args)

    def _Compare(self, node: ast.Compare) -> Node:
        # a <= x <= b becomes (a <= x) & (x <= b), evaluating x once per pair.
        operands = [self.convert(node.left), *(self.convert(c) for c in node.comparators)]
        parts: list[Node] = []
        for left, op, right in zip(operands, node.ops, operands[1:], strict=False):
            function = COMPARISONS.get(type(op))
            if function is None:
                raise self.fail(f"comparison '{type(op).__name__}' is not allowed")
            parts.append(Apply(SYMBOLS[type(op)], function, (left, right)))
        return parts[0] if len(parts) == 1 else Apply("and", _logical_and, tuple(parts))

    def _Call(self, node: ast.Call) -> Node:
        if not isinstance(node.func, ast.Name):
            raise self.fail("only plain function names can be called, e.g. log(x)")
        name = node.func.id
        function = REDUCERS.get(name) or FUNCTIONS.get(name)
        if function is None:
            allowed = ", ".join(sorted([*FUNCTIONS, *REDUCERS]))
            raise self.fail(
                f"function '{name}' is not allowed{did_you_mean(name, FUNCTIONS)}; "
                f"allowed functions: {allowed}"
            )
        if node.keywords:
            raise self.fail(f"keyword arguments are not allowed in {name}(...)")
        args = tuple(self.convert(arg) for arg in node.args)
        if name in REDUCERS:
            if len(args) != 1:
                raise self.fail(f"{name}() takes exactly one argument")
            return Apply(name, function, args)
        expected = getattr(function, "nin", None)
        if expected is not None and len(args) != expected:
            raise self.fail(f"{name}() takes {expected} argument(s), got {len(args)}")
        return Apply(name, function, args)


def parse_expression(text: str, known_names: set[str] | None = None) -> Expression:
    """Parse `text` into a safe expression; `known_names` (if given) checks branch names now."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"expression {text!r}: expected a non-empty string")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise ExpressionError(f"expression '{text}': syntax error{where}: {exc.msg}") from None
    return Expression(text.strip(), _Converter(text, known_names).convert(tree))
