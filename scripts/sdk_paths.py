"""Extract the webhook schema of the official Python SDK (`retell-sdk`).

Usage: python sdk_paths.py PATHS_TSV ENUMS_JSON

Walks the pydantic models `PhoneCallResponse`, `WebCallResponse` and
`ChatResponse` of `retell.types` (the call and chat objects that webhooks
carry) and writes:

PATHS_TSV
    One field per line: `path<TAB>req|opt<TAB>type`, in the models' field
    order. Paths start at the response type (`PhoneCallResponse.call_cost`);
    `a[]` is an item of list `a`; `a[]<role=x|y>` is an item of a list of
    item kinds, the kind whose `role` is `x` or `y`. Types: `str`, `int`,
    `float`, `bool`, `any` (any JSON), `object` (a model, its fields follow),
    `enum(a|b)`, `list<T>`, `map<K,V>`, `union<A,B>`, and `T|null` when the
    field may be null. Item kinds of a list are listed after the other fields
    of the response type. A list whose item kinds are the same as those of a
    sibling list with a shorter name is not listed again; a line
    `#NOTE<TAB><path>: item schema identical to <sibling>` says so, at the end.

ENUMS_JSON
    Name -> values of the string enums of those models (names are this
    crate's, see ENUMS below), then any other enum field under a name made of
    its path.

Fails (exit status 1) on an annotation it does not know, so that a new kind
of type is looked at rather than written down wrongly.
"""

from __future__ import annotations

import json
import re
import sys
import types
import typing

import pydantic
import retell.types as sdk

ROOTS = ("PhoneCallResponse", "WebCallResponse", "ChatResponse")

# Enums of the crate, and the SDK paths their values are read from (values of
# several paths are merged, first seen first). A path ending in `[]` stands
# for the roles of all item kinds of that list.
ENUMS = [
    ("CallType", ["PhoneCallResponse.call_type", "WebCallResponse.call_type"]),
    ("CallStatus", ["PhoneCallResponse.call_status", "WebCallResponse.call_status"]),
    ("Direction", ["PhoneCallResponse.direction"]),
    (
        "DisconnectionReason",
        ["PhoneCallResponse.disconnection_reason", "WebCallResponse.disconnection_reason"],
    ),
    ("UserSentiment", ["PhoneCallResponse.call_analysis.user_sentiment"]),
    ("ChatUserSentiment", ["ChatResponse.chat_analysis.user_sentiment"]),
    ("DataStorageSetting", ["PhoneCallResponse.data_storage_setting"]),
    ("UtteranceRole", ["PhoneCallResponse.transcript_object[].role"]),
    ("TranscriptRole", ["PhoneCallResponse.transcript_with_tool_calls[]"]),
    ("ChatRole", ["ChatResponse.message_with_tool_calls[]"]),
    (
        "TransitionType",
        ["PhoneCallResponse.transcript_with_tool_calls[]<role=node_transition>.transition_type"],
    ),
    (
        "ChatTransitionType",
        ["ChatResponse.message_with_tool_calls[]<role=node_transition>.transition_type"],
    ),
    ("ChatStatus", ["ChatResponse.chat_status"]),
    ("ChatType", ["ChatResponse.chat_type"]),
    (
        "BackupModelReason",
        ["PhoneCallResponse.transcript_object[].metadata.backup_model_used.reason"],
    ),
    # The events an agent can be sent (agent configuration, not in calls).
    ("AgentWebhookEvents", ["AgentResponse.webhook_events"]),
    ("ChatAgentWebhookEvents", ["ChatAgentResponse.webhook_events"]),
]

NONE = type(None)
UNIONS = (typing.Union, types.UnionType)


class Unknown(Exception):
    """An annotation this extractor does not know."""


def is_model(t) -> bool:
    return isinstance(t, type) and issubclass(t, pydantic.BaseModel)


def strip(t):
    """`Annotated[T, ...]` -> `T`."""
    while typing.get_origin(t) is typing.Annotated:
        t = typing.get_args(t)[0]
    return t


def non_null(t):
    """The non-null alternatives of `t`, and whether `t` may be null."""
    t = strip(t)
    if typing.get_origin(t) in UNIONS:
        args = [strip(a) for a in typing.get_args(t)]
        rest = [a for a in args if a is not NONE]
        return rest, len(rest) < len(args)
    return [t], False


def fmt(t) -> str:
    """The type column of an annotation."""
    alternatives, nullable = non_null(t)
    if len(alternatives) == 1:
        text = fmt_one(alternatives[0])
    else:
        text = "union<" + ",".join(fmt(a) for a in alternatives) + ">"
    return text + "|null" if nullable else text


def fmt_one(t) -> str:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if t is str:
        return "str"
    if t is bool:
        return "bool"
    if t is int:
        return "int"
    if t is float:
        return "float"
    if t is object or t is typing.Any:
        return "any"
    if t is NONE:
        return "null"
    if is_model(t):
        return "object"
    if origin is typing.Literal:
        return "enum(" + "|".join(str(a) for a in args) + ")"
    if origin in (list, typing.List, tuple) or t in (list, typing.List):
        return "list<" + (fmt(args[0]) if args else "any") + ">"
    if origin in (dict, typing.Dict) or t in (dict, typing.Dict):
        key, value = args if args else (str, object)
        return f"map<{fmt(key)},{fmt(value)}>"
    raise Unknown(repr(t))


def fields(model):
    """(JSON key, annotation, required) of a model's fields, in declared order."""
    if hasattr(model, "model_fields"):  # pydantic 2
        for name, info in model.model_fields.items():
            yield info.alias or name, info.annotation, info.is_required()
    else:  # pydantic 1: `outer_type_` drops `Optional`, the class annotations keep it
        hints = typing.get_type_hints(model, include_extras=True)
        for name, info in model.__fields__.items():
            yield info.alias or name, hints[name], bool(info.required)


def kinds_of(t):
    """The item models of `List[Union[ModelA, ModelB, ...]]`, else None."""
    alternatives, _ = non_null(t)
    if len(alternatives) != 1 or typing.get_origin(alternatives[0]) not in (list, typing.List):
        return None
    item = strip(typing.get_args(alternatives[0])[0])
    if typing.get_origin(item) not in UNIONS:
        return None
    members = [strip(a) for a in typing.get_args(item)]
    return members if all(is_model(m) for m in members) else None


def list_item_model(t):
    """The item model of `List[Model]`, else None."""
    alternatives, _ = non_null(t)
    if len(alternatives) != 1 or typing.get_origin(alternatives[0]) not in (list, typing.List):
        return None
    item = strip(typing.get_args(alternatives[0])[0])
    return item if is_model(item) else None


def role_of(kind) -> str:
    """`agent|user` for an item kind whose `role` is `Literal["agent", "user"]`."""
    for key, annotation, _ in fields(kind):
        if key == "role":
            alternatives, _ = non_null(annotation)
            if len(alternatives) == 1 and typing.get_origin(alternatives[0]) is typing.Literal:
                return "|".join(str(a) for a in typing.get_args(alternatives[0]))
    raise Unknown(f"item kind {kind.__name__} has no literal `role`")


class Walker:
    """Walks response models into path lines (and `#NOTE` lines)."""

    def __init__(self):
        self.lines: list[tuple[str, str, str]] = []
        self.notes: list[str] = []

    def model(self, prefix: str, model, lines, kinds_lists):
        """Lines of a model's fields (and of their fields), recursively.
        Lists of item kinds are collected in `kinds_lists` for later."""
        for key, annotation, required in fields(model):
            path = f"{prefix}.{key}"
            try:
                lines.append((path, "req" if required else "opt", fmt(annotation)))
            except Unknown as e:
                raise Unknown(f"{path}: {e}") from None
            alternatives, _ = non_null(annotation)
            if len(alternatives) == 1 and is_model(alternatives[0]):
                self.model(path, alternatives[0], lines, kinds_lists)
            elif (item := list_item_model(annotation)) is not None:
                self.model(path + "[]", item, lines, kinds_lists)
            elif (kinds := kinds_of(annotation)) is not None:
                kinds_lists.append((prefix, key, kinds))

    def kinds(self, prefix: str, kinds, lines):
        """Lines of every item kind of a list; gives back nested kind lists."""
        nested = []
        for kind in kinds:
            self.model(f"{prefix}[]<role={role_of(kind)}>", kind, lines, nested)
        return nested

    def root(self, name: str):
        model = getattr(sdk, name)
        lines = []
        pending = []
        self.model(name, model, lines, pending)
        while pending:
            # The lists of one parent are compared by their item lines written
            # relative to the list: equal ones are listed once, under the
            # shortest name, and the others get a `#NOTE`.
            parent = pending[0][0]
            siblings = [p for p in pending if p[0] == parent]
            pending = [p for p in pending if p[0] != parent]
            rendered = {}
            for _, key, kinds in siblings:
                body = []
                nested = self.kinds(f"{parent}.{key}", kinds, body)
                start = len(f"{parent}.{key}")
                relative = [(path[start:], req, ty) for path, req, ty in body]
                rendered[key] = (relative, body, nested)
            listed_as = {}
            for key in sorted(rendered, key=lambda k: (len(k), k)):
                listed_as[key] = next(
                    (k for k in listed_as if listed_as[k] == k and rendered[k][0] == rendered[key][0]),
                    key,
                )
            for _, key, _ in siblings:
                if listed_as[key] == key:
                    lines.extend(rendered[key][1])
                    pending.extend(rendered[key][2])
                else:
                    self.notes.append(
                        f"#NOTE\t{parent}.{key}: item schema identical to {listed_as[key]}"
                    )
        self.lines.extend(lines)


def enum_values(lines, extra) -> dict[str, list[str]]:
    """ENUMS, then every other enum field of two or more values."""
    types_by_path = {path: ty for path, _, ty in lines}
    types_by_path.update(extra)

    def values(ty: str):
        match = re.search(r"enum\(([^)]*)\)", ty)
        return match.group(1).split("|") if match else []

    out = {}
    for name, sources in ENUMS:
        merged = []
        for source in sources:
            if source.endswith("[]"):
                found = []
                for path in types_by_path:
                    match = re.match(re.escape(source) + r"<role=([^>]*)>\.role$", path)
                    if match:
                        found += match.group(1).split("|")
            else:
                found = values(types_by_path.get(source, ""))
            if not found:
                print(f"sdk_paths: enum {name}: nothing at {source}", file=sys.stderr)
            merged += [v for v in found if v not in merged]
        if merged:
            out[name] = merged

    # Enum fields the table above does not know (new in the SDK), by path.
    # The `role` of an item kind is covered by the role enums.
    known = [set(v) for v in out.values()]
    for path, _, ty in lines:
        found = values(ty)
        if len(found) < 2 or set(found) in known or re.search(r">\.role$", path):
            continue
        name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", path))
        out[name] = found
        known.append(set(found))
    return out


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    walker = Walker()
    extra = {}
    try:
        for name in ROOTS:
            walker.root(name)
        for name in ("AgentResponse", "ChatAgentResponse"):
            model = getattr(sdk, name, None)
            for key, annotation, _ in fields(model) if model else ():
                if key == "webhook_events":
                    extra[f"{name}.{key}"] = fmt(annotation)
    except Unknown as e:
        print(f"sdk_paths: annotation not understood: {e}", file=sys.stderr)
        return 1
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        for line in walker.lines:
            out.write("\t".join(line) + "\n")
        for note in walker.notes:
            out.write(note + "\n")
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        json.dump(enum_values(walker.lines, extra), out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
