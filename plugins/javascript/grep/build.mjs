// Builds the component: `node build.mjs OUT.wasm WIT_FOLDER`.
import { writeFile } from "node:fs/promises";
import { build } from "esbuild";
import { componentize } from "@bytecodealliance/componentize-js";

const [out = "grep.wasm", wit = "../../../wit"] = process.argv.slice(2);
// One module: componentize-js takes a single file, so the msgpack library is bundled in.
// The contract's interfaces stay imports.
await build({
  entryPoints: ["app.js"],
  bundle: true,
  format: "esm",
  platform: "neutral",
  mainFields: ["module", "main"],
  outfile: "dist/app.js",
  external: ["rustsink:*", "wasi:*"],
  logLevel: "warning",
});
const { component } = await componentize({
  sourcePath: "dist/app.js",
  witPath: wit,
  worldName: "filter",
});
await writeFile(out, component);
