// grep, in JavaScript: the filter of plugins/grep, for rustsink's component contract.
//
// Keeps (or, with `mode drop`, drops) the records whose field `key` is a string that
// `regex` matches. A record that is kept is copied from the batch as it came, byte for
// byte: the batch is only read, never encoded again.
//
// Build (docs/components.md, "Other languages"): `npm ci && npm run build`. build.mjs
// bundles this module with its msgpack library (esbuild), then componentize-js makes the
// component for world `filter` of wit/plugin.wit.

import { Decoder } from "@msgpack/msgpack";
import { count } from "rustsink:plugin/host@0.1.0";

// Set by init; a component instance serves one output on one thread.
let key = "";
let regex = /(?:)/;
let keepMatching = true;

// An error for `result<_, error>`: componentize-js returns what a function throws.
function fatal(message) {
  return { message, retryable: false };
}

export function describe() {
  return {
    name: "grep",
    summary: "Keeps or drops records whose field matches a regular expression",
    options: [
      { name: "key", description: "the field to match", required: true },
      { name: "regex", description: "the regular expression", required: true },
      {
        name: "mode",
        description: "keep: pass only matching records; drop: pass the others",
        defaultValue: "keep",
        required: false,
      },
    ],
  };
}

export function init(options) {
  const given = new Map(options);
  if (!given.has("key") || !given.has("regex")) {
    throw fatal("options 'key' and 'regex' are required");
  }
  try {
    regex = new RegExp(given.get("regex"));
  } catch (error) {
    throw fatal(`option 'regex': cannot use '${given.get("regex")}': ${error.message}`);
  }
  const mode = given.get("mode") ?? "keep";
  if (mode !== "keep" && mode !== "drop") {
    throw fatal(`option 'mode': cannot use '${mode}': expected keep or drop`);
  }
  key = given.get("key");
  keepMatching = mode === "keep";
}

// Events are `[[time, metadata], body]`, one after another; each is decoded only to read
// the body's field, and the kept ones are copied out as they are.
export function process(events) {
  const decoder = new Decoder();
  const kept = [];
  let start = 0;
  let length = 0;
  let dropped = 0;
  for (const event of decoder.decodeMulti(events)) {
    const end = decoder.pos;
    const body = Array.isArray(event) && event.length === 2 ? event[1] : null;
    const value = body !== null && typeof body === "object" ? body[key] : undefined;
    const matches = typeof value === "string" && regex.test(value);
    if (matches === keepMatching) {
      kept.push(events.subarray(start, end));
      length += end - start;
    } else {
      dropped += 1;
    }
    start = end;
  }
  if (dropped > 0) {
    count("dropped", BigInt(dropped));
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (const piece of kept) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}
