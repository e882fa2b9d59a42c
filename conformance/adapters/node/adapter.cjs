#!/usr/bin/env node
// specfmt conformance adapter (protocol 1) written in JavaScript from the spec and the schemas alone:
// the schema and checkpoint levels, compat and strict profiles. Spec: conformance/PROTOCOL.md
"use strict";

const readline = require("readline");
const { validateConfig } = require("./config.cjs");
const { validateCheckpoint } = require("./checkpoint.cjs");
const { finish } = require("./findings.cjs");

const HELLO = {
  protocol: 1,
  implementation: { name: "specfmt-node", version: "0.1.0", language: "javascript" },
  supports: { levels: ["schema", "checkpoint"], profiles: ["compat", "strict"], operations: [] },
};

function answer(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

/** Answer one command; null for stop. */
function handle(cmd) {
  if (cmd.cmd === "hello") return HELLO;
  if (cmd.cmd !== "validate") return { seq: cmd.seq, error: { message: `unsupported command ${cmd.cmd}` } };
  const profile = cmd.profile;
  if ("document" in cmd) {
    return { seq: cmd.seq, findings: finish(validateConfig(cmd.document, profile).findings, profile) };
  }
  return { seq: cmd.seq, findings: finish(validateCheckpoint(cmd.checkpoint_dir, profile, cmd.scan_values === true), profile) };
}

const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  if (cmd.cmd === "stop") { rl.close(); process.exit(0); }
  try {
    answer(handle(cmd));
  } catch (err) {
    process.stderr.write(`${err.stack}\n`);
    answer({ seq: cmd.seq, error: { message: String(err.message), traceback: String(err.stack) } });
  }
});
rl.on("close", () => process.exit(0));
