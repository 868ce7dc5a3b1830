"""Read a Terraform module with python-hcl2 and evaluate its expressions, for tests.

The tests evaluate the subset of HCL the ecsgrpc module uses (fast, for any
input; tests/support/terraform_cli.py runs the real binary): literals, strings with interpolation, tuples,
objects, ``var.``/``local.`` references, indexing, conditionals, operators
with HCL's precedence (the grammar encodes it), ``for`` expressions and the
functions listed in ``_FUNCTIONS``. References to resources evaluate to
:class:`Ref`, a string naming the reference (``aws_lb.agent[0].arn``), since
their values exist only after an apply. Anything else raises
:class:`HclError`, so a test never silently evaluates what it cannot read.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from lark import Token, Tree

__all__ = ["Block", "Body", "Evaluator", "HclError", "Module", "Ref", "load_module"]


class HclError(Exception):
    """An expression this evaluator cannot read, or a failing HCL function."""


class Ref(str):
    """A reference to something only known after apply (a resource attribute)."""

    __slots__ = ()


@dataclass
class Block:
    kind: str
    labels: tuple[str, ...]
    body: Body
    source: Path


@dataclass
class Body:
    attrs: dict[str, Tree[Any]] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def block(self, kind: str) -> Block | None:
        found = [b for b in self.blocks if b.kind == kind]
        return found[0] if found else None

    def all(self, kind: str) -> list[Block]:
        return [b for b in self.blocks if b.kind == kind]


@dataclass
class Module:
    """The top-level blocks of every ``*.tf`` file in one directory."""

    path: Path
    variables: dict[str, Body]
    locals: dict[str, Tree[Any]]
    resources: dict[tuple[str, str], Body]
    outputs: dict[str, Body]
    modules: dict[str, Body]
    blocks: list[Block]


def _subtrees(node: Tree[Any]) -> list[Tree[Any]]:
    return [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


def _label(node: Tree[Any] | Token) -> str:
    if isinstance(node, Token):
        return str(node)
    if node.data == "identifier":
        return str(node.children[0])
    if node.data == "string":
        return "".join(str(p.children[0]) for p in node.children if isinstance(p, Tree))
    if node.data in ("literal_value", "keyword"):
        return str(node.children[0])
    raise HclError(f"unexpected label node {node.data}")


def _body(node: Tree[Any], source: Path) -> Body:
    body = Body()
    for item in _subtrees(node):
        if item.data == "attribute":
            name, expr = _subtrees(item)
            body.attrs[_label(name)] = expr
        elif item.data == "block":
            parts = _subtrees(item)
            labels = tuple(_label(p) for p in parts[:-1])
            body.blocks.append(Block(labels[0], labels[1:], _body(parts[-1], source), source))
    return body


def load_module(path: Path) -> Module:
    """Parse every ``*.tf`` file of ``path`` (raises on a syntax error)."""
    blocks: list[Block] = []
    for tf in sorted(path.glob("*.tf")):
        tree = hcl2.parses_to_tree(tf.read_text())
        body_node = _subtrees(tree)[0] if tree.data == "start" else tree
        blocks.extend(_body(body_node, tf).blocks)
    module = Module(path, {}, {}, {}, {}, {}, blocks)
    for b in blocks:
        if b.kind == "variable":
            module.variables[b.labels[0]] = b.body
        elif b.kind == "locals":
            for name, expr in b.body.attrs.items():
                if name in module.locals:
                    raise HclError(f"local.{name} is defined twice")
                module.locals[name] = expr
        elif b.kind == "resource":
            module.resources[(b.labels[0], b.labels[1])] = b.body
        elif b.kind == "output":
            module.outputs[b.labels[0]] = b.body
        elif b.kind == "module":
            module.modules[b.labels[0]] = b.body
    return module


def _tf_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    raise HclError(f"cannot convert {value!r} to a string")


def _regex(pattern: str, text: str) -> Any:
    match = re.search(pattern, text)
    if match is None:
        raise HclError(f"pattern {pattern!r} does not match {text!r}")
    return match.group(0)


def _cidrhost(prefix: str, num: int) -> str:
    try:
        return str(ipaddress.ip_network(prefix, strict=False)[int(num)])
    except ValueError as exc:
        raise HclError(str(exc)) from None


def _set(values: Any) -> list[Any]:
    return sorted(set(values), key=json.dumps)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "alltrue": all,
    "anytrue": any,
    "cidrhost": _cidrhost,
    "concat": lambda *xs: [v for x in xs for v in x],
    "contains": lambda xs, v: v in xs,
    "distinct": lambda xs: list(dict.fromkeys(json.dumps(x, sort_keys=True) for x in xs)),
    "startswith": lambda s, prefix: s.startswith(prefix),
    "floor": math.floor,
    "jsonencode": json.dumps,
    "keys": sorted,
    "length": len,
    "merge": lambda *ms: {k: v for m in ms for k, v in m.items()},
    "regex": _regex,
    "setintersection": lambda *xs: _set(set(xs[0]).intersection(*xs[1:])),
    "setproduct": lambda *xs: [list(p) for p in itertools.product(*xs)],
    "sort": sorted,
    "split": lambda sep, s: s.split(sep),
    "toset": _set,
    "tostring": _tf_str,
}

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "&&": lambda a, b: bool(a) and bool(b),
    "||": lambda a, b: bool(a) or bool(b),
}

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text)


class Evaluator:
    """Evaluates a module's expressions for given input variables.

    ``inputs`` override the variables' defaults; a variable without a default
    must be given. Locals are evaluated lazily and memoized.
    """

    def __init__(self, module: Module, inputs: dict[str, Any] | None = None) -> None:
        self.module = module
        self.inputs = dict(inputs or {})
        unknown = set(self.inputs) - set(module.variables)
        if unknown:
            raise HclError(f"no such variable(s): {sorted(unknown)}")
        self._vars: dict[str, Any] = {}
        self._locals: dict[str, Any] = {}
        self._evaluating: set[str] = set()

    # --- public -----------------------------------------------------------

    def var(self, name: str) -> Any:
        if name not in self._vars:
            if name not in self.module.variables:
                raise HclError(f"var.{name} is not declared")
            if name in self.inputs:
                self._vars[name] = self.inputs[name]
            else:
                default = self.module.variables[name].attrs.get("default")
                if default is None:
                    raise HclError(f"var.{name} has no default and was not given")
                self._vars[name] = self.eval(default)
        return self._vars[name]

    def local(self, name: str) -> Any:
        if name not in self._locals:
            if name not in self.module.locals:
                raise HclError(f"local.{name} is not declared")
            if name in self._evaluating:
                raise HclError(f"local.{name} refers to itself")
            self._evaluating.add(name)
            try:
                self._locals[name] = self.eval(self.module.locals[name])
            finally:
                self._evaluating.discard(name)
        return self._locals[name]

    def attr(self, resource: tuple[str, str], name: str) -> Any:
        """Value of a resource's top-level attribute."""
        return self.eval(self.module.resources[resource].attrs[name])

    def validation_errors(self) -> list[str]:
        """Error messages of every variable validation that fails."""
        errors = []
        for name, body in self.module.variables.items():
            for rule in body.all("validation"):
                if not self.eval(rule.body.attrs["condition"]):
                    errors.append(f"{name}: {self.eval(rule.body.attrs['error_message'])}")
        return errors

    def precondition_errors(self) -> list[str]:
        """Error messages of every failing lifecycle precondition."""
        errors = []
        for body in self.module.resources.values():
            for life in body.all("lifecycle"):
                for rule in life.body.all("precondition"):
                    if not self.eval(rule.body.attrs["condition"]):
                        errors.append(self.eval(rule.body.attrs["error_message"]))
        return errors

    def eval(self, node: Tree[Any], scope: dict[str, Any] | None = None) -> Any:
        handler = getattr(self, f"_eval_{node.data}", None)
        if handler is None:
            raise HclError(f"cannot evaluate HCL node {node.data!r}")
        return handler(node, scope or {})

    # --- nodes --------------------------------------------------------------

    def _eval_expr_term(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        (inner,) = _subtrees(node)
        return self.eval(inner, scope)

    def _eval_literal_value(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        return {"true": True, "false": False, "null": None}[str(node.children[0])]

    def _eval_int_lit(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        return int(str(node.children[0]))

    def _eval_float_lit(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        return float(str(node.children[0]))

    def _eval_string(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        out = []
        for part in _subtrees(node):
            (piece,) = part.children
            if isinstance(piece, Tree) and piece.data == "interpolation":
                (expr,) = _subtrees(piece)
                out.append(_tf_str(self.eval(expr, scope)))
            elif isinstance(piece, Token) and piece.type == "ESCAPED_INTERPOLATION":
                out.append(str(piece)[1:])
            elif isinstance(piece, Token) and piece.type == "STRING_CHARS":
                out.append(_unescape(str(piece)))
            else:
                raise HclError(f"unsupported string part {piece!r}")
        text = "".join(out)
        # A string that embeds a resource reference is itself only known after apply.
        return Ref(text) if any(isinstance(p, Ref) for p in out) else text

    def _eval_tuple(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        return [self.eval(c, scope) for c in _subtrees(node)]

    def _eval_object(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        result = {}
        for elem in _subtrees(node):
            key_node, value_node = _subtrees(elem)
            (key_expr,) = _subtrees(key_node)
            inner = _subtrees(key_expr)
            if key_expr.data == "expr_term" and len(inner) == 1 and inner[0].data == "identifier":
                key = _label(inner[0])  # a bare name is a key, not a reference
            else:
                key = _tf_str(self.eval(key_expr, scope))
            result[key] = self.eval(value_node, scope)
        return result

    def _eval_identifier(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        name = _label(node)
        if name in scope:
            return scope[name]
        return Ref(name)

    def _eval_get_attr_expr_term(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        base_node, get_attr = _subtrees(node)
        name = _label(_subtrees(get_attr)[0])
        base_inner = _subtrees(base_node)
        if len(base_inner) == 1 and base_inner[0].data == "identifier":
            root = _label(base_inner[0])
            if root == "var" and root not in scope:
                return self.var(name)
            if root == "local" and root not in scope:
                return self.local(name)
        base = self.eval(base_node, scope)
        if isinstance(base, Ref):
            return Ref(f"{base}.{name}")
        if isinstance(base, dict):
            return base[name]
        raise HclError(f"cannot read .{name} of {base!r}")

    def _eval_index_expr_term(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        base_node, index = _subtrees(node)
        base = self.eval(base_node, scope)
        key = self.eval(_subtrees(index)[0], scope)
        if isinstance(base, Ref):
            return Ref(f"{base}[{_tf_str(key)}]")
        if isinstance(base, list):
            return base[int(key)]
        return base[key]

    def _eval_function_call(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        parts = _subtrees(node)
        name = _label(parts[0])
        args = _subtrees(parts[1]) if len(parts) > 1 else []
        if name == "can":
            try:
                self.eval(args[0], scope)
            except (HclError, KeyError, IndexError, TypeError, ValueError):
                return False
            return True
        if name not in _FUNCTIONS:
            raise HclError(f"function {name}() is not supported by this evaluator")
        values = [self.eval(a, scope) for a in args]
        try:
            return _FUNCTIONS[name](*values)
        except (TypeError, ValueError, AttributeError) as exc:
            raise HclError(f"{name}() failed: {exc}") from None

    def _eval_conditional(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        cond, yes, no = _subtrees(node)
        # Only the chosen branch is evaluated (HCL reports only its errors).
        return self.eval(yes, scope) if self.eval(cond, scope) else self.eval(no, scope)

    def _eval_binary_op(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        left, term = _subtrees(node)
        op_node, right = _subtrees(term)
        op = str(op_node.children[0])
        a, b = self.eval(left, scope), self.eval(right, scope)
        if isinstance(a, Ref) or isinstance(b, Ref):
            raise HclError(f"operator {op} on a value known only after apply")
        return _BINARY[op](a, b)

    def _eval_unary_op(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        op = str(node.children[0])
        value = self.eval(_subtrees(node)[0], scope)
        return -value if op == "-" else not value

    def _for_items(self, node: Tree[Any], scope: dict[str, Any]) -> Iterator[dict[str, Any]]:
        intro = next(c for c in _subtrees(node) if c.data == "for_intro")
        names = [_label(c) for c in _subtrees(intro) if c.data == "identifier"]
        collection = self.eval(next(c for c in _subtrees(intro) if c.data != "identifier"), scope)
        pairs = collection.items() if isinstance(collection, dict) else enumerate(collection)
        for key, value in pairs:
            inner = dict(scope)
            if len(names) == 2:
                inner[names[0]], inner[names[1]] = key, value
            else:
                inner[names[0]] = value
            cond = [c for c in _subtrees(node) if c.data == "for_cond"]
            if not cond or self.eval(_subtrees(cond[0])[0], inner):
                yield inner

    def _eval_for_tuple_expr(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        body = [c for c in _subtrees(node) if c.data not in ("for_intro", "for_cond")]
        return [self.eval(body[0], inner) for inner in self._for_items(node, scope)]

    def _eval_for_object_expr(self, node: Tree[Any], scope: dict[str, Any]) -> Any:
        key_node, value_node = [
            c for c in _subtrees(node) if c.data not in ("for_intro", "for_cond")
        ]
        return {
            _tf_str(self.eval(key_node, inner)): self.eval(value_node, inner)
            for inner in self._for_items(node, scope)
        }


def references(node: Tree[Any]) -> Iterator[tuple[str, ...]]:
    """Every traversal root in an expression: ("var", name), ("local", name) or (type, name)."""
    for sub in node.iter_subtrees():
        if sub.data != "get_attr_expr_term":
            continue
        base, get_attr = _subtrees(sub)
        inner = _subtrees(base)
        if len(inner) == 1 and inner[0].data == "identifier":
            yield (_label(inner[0]), _label(_subtrees(get_attr)[0]))
