"""grep, in Python: the filter of plugins/grep, for rustsink's component contract.

Keeps (or, with `mode drop`, drops) the records whose field `key` is a string that
`regex` matches. It answers with an outcome per record (contract 0.2): a record that is
kept goes on as it came, byte for byte, and the batch is only read, never encoded again.

Build (docs/components.md, "Other languages"):

    componentize-py -d ../../../wit -w filter componentize app -o grep.wasm -p . -p SITE

where SITE holds the pure-Python msgpack (`MSGPACK_PUREPYTHON=1 pip install --no-binary
msgpack --target SITE msgpack`).
"""

import re

import msgpack
from componentize_py_types import Err
from wit_world import WitWorld as Filter
from wit_world.imports import host, types

KEEP = types.Outcome_Keep()
DROP = types.Outcome_Drop()

# Set by init; a component instance serves one output on one thread.
KEY = ""
REGEX = re.compile("")
KEEP_MATCHING = True


def fatal(message):
    return Err(types.Error(message=message, retryable=False))


class WitWorld(Filter):
    def describe(self):
        return types.Description(
            name="grep",
            summary="Keeps or drops records whose field matches a regular expression",
            options=[
                types.OptionSpec("key", "the field to match", None, True),
                types.OptionSpec("regex", "the regular expression", None, True),
                types.OptionSpec(
                    "mode",
                    "keep: pass only matching records; drop: pass the others",
                    "keep",
                    False,
                ),
            ],
        )

    def init(self, options):
        global KEY, REGEX, KEEP_MATCHING
        given = dict(options)
        if "key" not in given or "regex" not in given:
            raise fatal("options 'key' and 'regex' are required")
        try:
            REGEX = re.compile(given["regex"])
        except re.error as error:
            raise fatal(f"option 'regex': cannot use '{given['regex']}': {error}")
        mode = given.get("mode", "keep")
        if mode not in ("keep", "drop"):
            raise fatal(f"option 'mode': cannot use '{mode}': expected keep or drop")
        KEY = given["key"]
        KEEP_MATCHING = mode == "keep"

    def process(self, tag, events):
        unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=False, unicode_errors="surrogateescape"
        )
        unpacker.feed(events)
        outcomes = []
        dropped = 0
        for event in unpacker:
            body = event[1] if isinstance(event, list) and len(event) == 2 else {}
            value = body.get(KEY) if isinstance(body, dict) else None
            matches = isinstance(value, str) and REGEX.search(value) is not None
            if matches == KEEP_MATCHING:
                outcomes.append(KEEP)
            else:
                outcomes.append(DROP)
                dropped += 1
        if dropped:
            host.count("dropped", dropped)
        return types.Processed(outcomes=outcomes, events=b"")
