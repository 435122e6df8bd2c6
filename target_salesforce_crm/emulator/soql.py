"""A SOQL subset parser (contract part 2, §1): one object, a WHERE tree, ORDER BY, LIMIT, OFFSET.

Errors are the org's request-level ones (§1.6): `MALFORMED_QUERY` for syntax,
`INVALID_TYPE` for an unknown object, `INVALID_FIELD` for an unknown, hidden or
non-filterable field or a literal of the wrong kind, each message echoing the
query with a caret and `ERROR at Row:R:Column:C`, as the org does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .ids import parse_id
from .prepare import RequestError
from .schema import FieldSpec, SObjectSchema

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:])
  | (?P<number>[+-]?\d+(?:\.\d+)?)(?![\w.])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<string>')
  | (?P<op>!=|<>|<=|>=|=|<|>|\(|\)|,)
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
LIKE_ESCAPE = "\x00"  # marks a `\_` or `\%` inside a decoded literal: a literal wildcard
MAX_STRING_LITERAL = 4000
_COMPARISONS = frozenset({"=", "!=", "<>", "<", ">", "<=", ">="})
_TEXT = frozenset({"string", "textarea", "email", "phone", "url", "picklist", "multipicklist",
                   "combobox"})
_NUMERIC = frozenset({"double", "int", "currency", "percent"})
_KIND_NAMES = {"boolean": "boolean", "date": "date", "datetime": "dateTime", "double": "double",
               "int": "integer", "currency": "currency", "percent": "percent"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # name, string, number, date, datetime, op, eof
    text: str  # as written (for messages)
    value: Any  # decoded string, number, or the upper-cased name
    pos: int
    like_escaped: bool = False  # holds `\_` or `\%`, which only LIKE accepts


@dataclass(frozen=True, slots=True)
class Condition:
    """`field op values`; `op` is one of = != < > <= >= in notin like."""

    spec: FieldSpec
    op: str
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Junction:
    kind: str  # "and" / "or"
    parts: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Negation:
    part: Any


@dataclass(slots=True)
class Query:
    schema: SObjectSchema
    fields: list[FieldSpec]  # empty for COUNT()
    count: bool
    where: Any  # Condition | Junction | Negation | None
    order: list[tuple[FieldSpec, bool, bool]]  # (field, descending, nulls_last)
    limit: int | None
    offset: int


def query_error(code: str, soql: str, pos: int, text: str) -> RequestError:
    """A 400 whose message points at `pos` the way the org's parser does."""
    start = soql.rfind("\n", 0, pos) + 1
    end = soql.find("\n", pos)
    line = soql[start:] if end < 0 else soql[start:end]
    row = soql.count("\n", 0, pos) + 1
    column = pos - start + 1
    return RequestError(400, code, f"\n{line}\n{' ' * (column - 1)}^\n"
                                   f"ERROR at Row:{row}:Column:{column}\n{text}")


def _string(soql: str, start: int) -> tuple[Token, int]:
    """Decode a quoted literal from `start` (the opening quote); returns the token and its end."""
    out: list[str] = []
    like_escaped = False
    i = start + 1
    while i < len(soql):
        char = soql[i]
        if char == "'":
            text = soql[start:i + 1]
            if len(out) > MAX_STRING_LITERAL:
                raise query_error("MALFORMED_QUERY", soql, start,
                                  f"String literal is too long: the limit is "
                                  f"{MAX_STRING_LITERAL} characters")
            return Token("string", text, "".join(out), start, like_escaped), i + 1
        if char == "\\":
            escape = soql[i + 1:i + 2]
            if escape in _ESCAPES:
                out.append(_ESCAPES[escape])
                i += 2
                continue
            if escape in ("_", "%"):
                out.append(LIKE_ESCAPE + escape)
                like_escaped = True
                i += 2
                continue
            if escape == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", soql[i + 2:i + 6]):
                out.append(chr(int(soql[i + 2:i + 6], 16)))
                i += 6
                continue
            raise query_error("MALFORMED_QUERY", soql, start,
                              f"Invalid string literal '{soql[start + 1:]}'. Illegal character "
                              f"sequence '\\{escape}' in string literal.")
        out.append(char)
        i += 1
    raise query_error("MALFORMED_QUERY", soql, start, f"unexpected token: '{soql[start:]}'")


def tokenize(soql: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(soql):
        if soql[pos] == "'":
            token, pos = _string(soql, pos)
            tokens.append(token)
            continue
        match = _TOKEN.match(soql, pos)
        if match is None:
            raise query_error("MALFORMED_QUERY", soql, pos,
                              f"unexpected token: '{soql[pos:].split(maxsplit=1)[0]}'")
        kind, text = match.lastgroup or "", match.group()
        if kind == "name":
            tokens.append(Token(kind, text, text.upper(), pos))
        elif kind == "number":
            tokens.append(Token(kind, text, float(text) if "." in text else int(text), pos))
        elif kind != "space":
            tokens.append(Token(kind, text, text, pos))
        pos = match.end()
    tokens.append(Token("eof", "<EOF>", None, len(soql)))
    return tokens


class _Parser:
    def __init__(self, schemas: Mapping[str, SObjectSchema], soql: str) -> None:
        self.schemas = schemas
        self.soql = soql
        self.tokens = tokenize(soql)
        self.index = 0
        self.schema: SObjectSchema | None = None

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def unexpected(self, token: Token) -> RequestError:
        return query_error("MALFORMED_QUERY", self.soql, token.pos,
                           f"unexpected token: '{token.text}'")

    def is_word(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "name" and token.value in words

    def expect_word(self, word: str) -> Token:
        if not self.is_word(word):
            raise self.unexpected(self.peek())
        return self.take()

    def expect_op(self, op: str) -> Token:
        token = self.take()
        if token.kind != "op" or token.value != op:
            raise self.unexpected(token)
        return token

    # --- clauses -------------------------------------------------------------------

    def parse(self) -> Query:
        self.expect_word("SELECT")
        count = False
        selected: list[Token] = []
        if self.is_word("COUNT") and self.tokens[self.index + 1].text == "(":
            self.take()
            self.expect_op("(")
            self.expect_op(")")
            count = True
        else:
            while True:
                token = self.take()
                if token.kind != "name" or token.value in ("FROM", "WHERE"):
                    raise self.unexpected(token)
                selected.append(token)
                if not (self.peek().kind == "op" and self.peek().value == ","):
                    break
                self.take()
        self.expect_word("FROM")
        name = self.take()
        if name.kind != "name":
            raise self.unexpected(name)
        self.schema = self.schemas.get(name.text.lower())
        if self.schema is None:
            raise query_error(
                "INVALID_TYPE", self.soql, name.pos,
                f"sObject type '{name.text}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name. Please "
                "reference your WSDL or the describe call for the appropriate names.")
        fields: list[FieldSpec] = []
        for token in selected:
            spec = self.field(token)
            if spec not in fields:
                fields.append(spec)
        query = Query(self.schema, fields, count, None, [], None, 0)
        if self.is_word("WHERE"):
            self.take()
            query.where = self.expression()
        if self.is_word("ORDER"):
            self.take()
            self.expect_word("BY")
            query.order = self.order_list()
        if self.is_word("LIMIT"):
            self.take()
            query.limit = self.integer()
        if self.is_word("OFFSET"):
            self.take()
            query.offset = self.integer()
        if self.peek().kind != "eof":
            raise self.unexpected(self.peek())
        return query

    def integer(self) -> int:
        token = self.take()
        if token.kind != "number" or not isinstance(token.value, int) or token.value < 0:
            raise self.unexpected(token)
        return token.value

    def field(self, token: Token, use: str = "") -> FieldSpec:
        assert self.schema is not None
        spec = self.schema.field(token.text)
        if spec is None or "." in token.text:
            raise query_error(
                "INVALID_FIELD", self.soql, token.pos,
                f"No such column '{token.text}' on entity '{self.schema.name}'. If you are "
                "attempting to use a custom field, be sure to append the '__c' after the custom "
                "field name. Please reference your WSDL or the describe call for the appropriate "
                "names.")
        if use and not spec.describe.get(use + "able", True):
            verb = "filtered" if use == "filter" else "sorted"
            raise query_error("INVALID_FIELD", self.soql, token.pos,
                              f"field '{spec.name}' can not be {verb} in a query call")
        return spec

    def order_list(self) -> list[tuple[FieldSpec, bool, bool]]:
        order = []
        while True:
            token = self.take()
            if token.kind != "name":
                raise self.unexpected(token)
            spec = self.field(token, "sort")
            descending = False
            if self.is_word("ASC", "DESC"):
                descending = self.take().value == "DESC"
            nulls_last = descending
            if self.is_word("NULLS"):
                self.take()
                if not self.is_word("FIRST", "LAST"):
                    raise self.unexpected(self.peek())
                nulls_last = self.take().value == "LAST"
            order.append((spec, descending, nulls_last))
            if not (self.peek().kind == "op" and self.peek().value == ","):
                return order
            self.take()

    # --- WHERE -----------------------------------------------------------------------

    def expression(self) -> Any:
        """Operands joined by one connective: mixing AND and OR needs parentheses, as in SOQL."""
        parts = [self.unary()]
        kind = ""
        while self.is_word("AND", "OR"):
            word = self.peek()
            if kind and word.value.lower() != kind:
                raise self.unexpected(word)
            kind = self.take().value.lower()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else Junction(kind, tuple(parts))

    def unary(self) -> Any:
        if self.is_word("NOT"):
            self.take()
            return Negation(self.unary())
        if self.peek().kind == "op" and self.peek().value == "(":
            self.take()
            inner = self.expression()
            self.expect_op(")")
            return inner
        return self.comparison()

    def comparison(self) -> Condition:
        token = self.take()
        if token.kind != "name":
            raise self.unexpected(token)
        spec = self.field(token, "filter")
        op_token = self.take()
        if op_token.kind == "op" and op_token.value in _COMPARISONS:
            op = "!=" if op_token.value == "<>" else op_token.value
            value = self.literal(spec, allow_null=op in ("=", "!="))
            return Condition(spec, op, (value,))
        if op_token.kind == "name" and op_token.value == "LIKE":
            value_token = self.take()
            if value_token.kind != "string" or spec.type not in _TEXT | {"id", "reference"}:
                raise self.unexpected(value_token)
            return Condition(spec, "like", (value_token.value,))
        negated = op_token.kind == "name" and op_token.value == "NOT"
        if negated:
            op_token = self.take()
        if op_token.kind == "name" and op_token.value == "IN":
            self.expect_op("(")
            values = [self.literal(spec, allow_null=True)]
            while self.peek().kind == "op" and self.peek().value == ",":
                self.take()
                values.append(self.literal(spec, allow_null=True))
            self.expect_op(")")
            return Condition(spec, "notin" if negated else "in", tuple(values))
        raise self.unexpected(op_token)

    def literal(self, spec: FieldSpec, *, allow_null: bool) -> Any:
        """The literal's value as the field stores it, or the org's error for the wrong kind."""
        token = self.take()
        if token.kind == "name" and token.value == "NULL":
            if not allow_null:
                raise self.unexpected(token)
            return None
        kind = spec.type
        if token.kind == "string":
            if token.like_escaped:
                raise query_error("MALFORMED_QUERY", self.soql, token.pos,
                                  f"Invalid string literal '{token.text[1:-1]}'. Illegal "
                                  "character sequence in string literal.")
            if kind in ("id", "reference"):
                key = parse_id(token.value)
                if key is None:
                    raise query_error("INVALID_QUERY_FILTER_OPERATOR", self.soql, token.pos,
                                      f"invalid ID field: {token.value}")
                return key
            if kind in _TEXT:
                return token.value
            raise self.wrong_kind(spec, token, quoted=True)
        if token.kind == "name" and token.value in ("TRUE", "FALSE") and kind == "boolean":
            return token.value == "TRUE"
        if token.kind == "number" and kind in _NUMERIC:
            return float(token.value)
        if token.kind == kind and kind in ("date", "datetime"):
            return token.text
        if token.kind in ("name", "number", "date", "datetime"):
            raise self.wrong_kind(spec, token, quoted=False)
        raise self.unexpected(token)

    def wrong_kind(self, spec: FieldSpec, token: Token, *, quoted: bool) -> RequestError:
        if quoted:
            kind = _KIND_NAMES.get(spec.type, spec.type)
            text = f"must be of type {kind} and should not be enclosed in quotes"
        elif spec.type in _TEXT or spec.type in ("id", "reference"):
            text = "must be of type string and should be enclosed in quotes"
        else:
            text = f"must be of type {_KIND_NAMES.get(spec.type, spec.type)}"
        return query_error("INVALID_FIELD", self.soql, token.pos,
                           f"value of filter criterion for field '{spec.name}' {text}")


def parse(schemas: Mapping[str, SObjectSchema], soql: str) -> Query:
    """Parse and check one SOQL statement against objects keyed by lower-case name (the
    org's `schemas_lower`, or the Tooling API's objects)."""
    return _Parser(schemas, soql).parse()
