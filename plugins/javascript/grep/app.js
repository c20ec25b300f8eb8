// grep, in JavaScript: the filter of plugins/grep, for rustsink's component contract.
//
// Keeps (or, with `mode drop`, drops) the records whose field `key` is a string that
// `regex` matches. It answers with an outcome per record (contract 0.2): a record that is
// kept goes on as it came, byte for byte, and the batch is only read, never encoded again.
//
// Build (docs/components.md, "Other languages"): `npm ci && npm run build`. build.mjs
// bundles this module with its msgpack library (esbuild), then componentize-js makes the
// component for world `filter` of wit/plugin.wit.

import { Decoder } from "@msgpack/msgpack";
import { count } from "rustsink:plugin/host@0.2.0";

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
// the body's field. Variants are `{ tag }` objects, with `val` for a payload.
const KEEP = { tag: "keep" };
const DROP = { tag: "drop" };

export function process(tag, events) {
  const decoder = new Decoder();
  const outcomes = [];
  let dropped = 0;
  for (const event of decoder.decodeMulti(events)) {
    const body = Array.isArray(event) && event.length === 2 ? event[1] : null;
    const value = body !== null && typeof body === "object" ? body[key] : undefined;
    const matches = typeof value === "string" && regex.test(value);
    if (matches === keepMatching) {
      outcomes.push(KEEP);
    } else {
      outcomes.push(DROP);
      dropped += 1;
    }
  }
  if (dropped > 0) {
    count("dropped", BigInt(dropped));
  }
  return { outcomes, events: new Uint8Array(0) };
}
