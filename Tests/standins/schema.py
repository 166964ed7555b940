"""A JSON-Schema (draft-07) validator for the subset OpenClaw's generated protocol schema uses:
type, const, enum, properties/required/additionalProperties/patternProperties, items,
min/max length, items and values, pattern, anyOf/allOf/oneOf/not and local $ref. Errors name
the failing path, as OpenClaw's "invalid <method> params: ..." messages do."""
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_FILE = os.path.join(HERE, "protocol.schema.json")


class Invalid(ValueError):
    pass


def _type_ok(value, kind):
    if isinstance(kind, list):
        return any(_type_ok(value, k) for k in kind)
    return {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
        "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    }[kind](value)


class Validator:
    def __init__(self, root):
        self.root = root

    def check(self, value, schema, path="root"):
        """Raises Invalid with a path for the first problem found."""
        if schema is True or schema == {}:
            return
        if schema is False:
            raise Invalid(f"{path}: not allowed")
        if "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/"):
                raise Invalid(f"unsupported $ref {ref}")
            target = self.root
            for part in ref[2:].split("/"):
                target = target[part]
            self.check(value, target, path)
        if "type" in schema and not _type_ok(value, schema["type"]):
            raise Invalid(f"{path}: must be {schema['type']}")
        if "const" in schema and value != schema["const"]:
            raise Invalid(f"{path}: must be {json.dumps(schema['const'])}")
        if "enum" in schema and value not in schema["enum"]:
            raise Invalid(f"{path}: must be one of {', '.join(map(str, schema['enum']))}")
        if isinstance(value, str):
            if len(value) < schema.get("minLength", 0):
                raise Invalid(f"{path}: must have at least {schema['minLength']} characters")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                raise Invalid(f"{path}: must have at most {schema['maxLength']} characters")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                raise Invalid(f"{path}: must match {schema['pattern']}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                raise Invalid(f"{path}: must be >= {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                raise Invalid(f"{path}: must be <= {schema['maximum']}")
        if isinstance(value, list):
            if len(value) < schema.get("minItems", 0):
                raise Invalid(f"{path}: must have at least {schema['minItems']} items")
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                raise Invalid(f"{path}: must have at most {schema['maxItems']} items")
            if isinstance(schema.get("items"), dict):
                for i, item in enumerate(value):
                    self.check(item, schema["items"], f"{path}[{i}]")
        if isinstance(value, dict):
            self._object(value, schema, path)
        if "anyOf" in schema and not any(self._ok(value, s, path) for s in schema["anyOf"]):
            raise Invalid(f"{path}: matches none of the allowed forms")
        if "oneOf" in schema and sum(self._ok(value, s, path) for s in schema["oneOf"]) != 1:
            raise Invalid(f"{path}: must match exactly one form")
        for sub in schema.get("allOf", ()):
            self.check(value, sub, path)
        if "not" in schema and self._ok(value, schema["not"], path):
            raise Invalid(f"{path}: matches a forbidden form")

    def _object(self, value, schema, path):
        props = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                raise Invalid(f"{path}: must have required property '{key}'")
        patterns = schema.get("patternProperties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            where = f"{path}.{key}"
            matched = False
            if key in props:
                self.check(item, props[key], where)
                matched = True
            for pattern, sub in patterns.items():
                if re.search(pattern, key):
                    self.check(item, sub, where)
                    matched = True
            if not matched:
                if extra is False:
                    raise Invalid(f"{path}: unexpected property '{key}'")
                if isinstance(extra, dict):
                    self.check(item, extra, where)

    def _ok(self, value, schema, path):
        try:
            self.check(value, schema, path)
            return True
        except Invalid:
            return False


def load(path=SCHEMA_FILE):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
