#!/usr/bin/env node
// Compile contracts/RootRegistry.sol with the solc version pinned in contracts/package.json
// and write the artefact notary loads at run time (notary/anchor/RootRegistry.json).
//
//   node scripts/compile_contract.js            write the artefact
//   node scripts/compile_contract.js --check    exit 1 if the committed artefact differs
//   node scripts/compile_contract.js --out F    write to F instead
//
// Requires `npm ci --prefix contracts` first. The build is deterministic: fixed optimizer
// settings and EVM version, no metadata hash in the bytecode, keys written in sorted order.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const SOURCE_NAME = "RootRegistry.sol";
const CONTRACT = "RootRegistry";
const SOURCE_PATH = path.join(ROOT, "contracts", SOURCE_NAME);
const ARTEFACT_PATH = path.join(ROOT, "notary", "anchor", `${CONTRACT}.json`);

// "paris" (no PUSH0) keeps the bytecode deployable on consortium chains and L2s that lag
// behind mainnet forks.
const SETTINGS = {
  evmVersion: "paris",
  metadata: { bytecodeHash: "none" },
  optimizer: { enabled: true, runs: 200 },
};

function loadSolc() {
  const modules = path.join(ROOT, "contracts", "node_modules");
  try {
    return require(path.join(modules, "solc"));
  } catch (err) {
    process.stderr.write(
      `compile_contract: solc is not installed (${err.code}); ` +
        "run `npm ci --prefix contracts` first\n",
    );
    process.exit(3);
  }
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, sortKeys(value[key])]),
    );
  }
  return value;
}

function compile(solc, source) {
  const input = {
    language: "Solidity",
    sources: { [SOURCE_NAME]: { content: source } },
    settings: {
      ...SETTINGS,
      outputSelection: {
        [SOURCE_NAME]: { [CONTRACT]: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
      },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const problems = (output.errors || []).filter((e) => e.severity !== "info");
  for (const problem of problems) process.stderr.write(problem.formattedMessage + "\n");
  if (problems.some((e) => e.severity === "error")) process.exit(1);
  return output.contracts[SOURCE_NAME][CONTRACT];
}

function artefact(solc, source) {
  const built = compile(solc, source);
  return sortKeys({
    abi: built.abi,
    bytecode: "0x" + built.evm.bytecode.object,
    compiler: { name: "solc", version: solc.version() },
    contractName: CONTRACT,
    deployedBytecode: "0x" + built.evm.deployedBytecode.object,
    settings: SETTINGS,
    sourceName: SOURCE_NAME,
    sourceSha256: crypto.createHash("sha256").update(source).digest("hex"),
  });
}

function main(argv) {
  const check = argv.includes("--check");
  const outIndex = argv.indexOf("--out");
  const out = outIndex >= 0 ? path.resolve(argv[outIndex + 1]) : ARTEFACT_PATH;
  const solc = loadSolc();
  const text = JSON.stringify(artefact(solc, fs.readFileSync(SOURCE_PATH, "utf8")), null, 2) + "\n";

  if (check) {
    const committed = fs.existsSync(out) ? fs.readFileSync(out, "utf8") : "";
    if (committed !== text) {
      process.stderr.write(`compile_contract: ${path.relative(ROOT, out)} is out of date\n`);
      process.exit(1);
    }
    process.stdout.write(`compile_contract: ${path.relative(ROOT, out)} is up to date\n`);
    return;
  }
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, text);
  process.stdout.write(`compile_contract: wrote ${path.relative(ROOT, out)} (solc ${solc.version()})\n`);
}

main(process.argv.slice(2));
