// Copies the repository's protos into ./proto (shipped with the package, loaded at run
// time by @grpc/proto-loader) and generates their TypeScript types into src/generated
// with proto-loader-gen-types. Run by `npm run build`; nothing generated is kept in git.
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const here = path.join(__dirname, "..");
const source = process.argv[2] || path.join(here, "..", "..", "proto");
const protoDir = path.join(here, "proto");
fs.rmSync(protoDir, { recursive: true, force: true });
fs.cpSync(path.join(source, "reelforge"), path.join(protoDir, "reelforge"), { recursive: true });
const protos = fs
  .readdirSync(path.join(protoDir, "reelforge", "v1"))
  .filter((f) => f.endsWith(".proto"))
  .map((f) => path.join("reelforge", "v1", f));
const out = path.join(here, "src", "generated");
fs.rmSync(out, { recursive: true, force: true });
execFileSync(
  process.execPath,
  [
    require.resolve("@grpc/proto-loader/build/bin/proto-loader-gen-types.js"),
    "--longs=String",
    "--enums=String",
    "--defaults",
    "--oneofs",
    "--keepCase",
    "--grpcLib=@grpc/grpc-js",
    `--includeDirs=${protoDir}`,
    `--outDir=${out}`,
    ...protos,
  ],
  { stdio: "inherit", cwd: here },
);
console.log(`generated ${protos.length} protos into ${path.relative(here, out)}`);
