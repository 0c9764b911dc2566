// Builds the console into dist/: index.html, console.js (the bundle of
// src/main.js and the libraries it imports), console.css, LICENSES.txt
// with the licence of every library inside the bundle, and a gzip copy of
// each (the server sends it to browsers that accept gzip). The server
// embeds dist/ when it is compiled (server/http/build.rs).
import { build } from "esbuild";
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { constants, gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

const result = await build({
  entryPoints: [join(here, "src/main.js")],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  platform: "browser",
  outfile: join(dist, "console.js"),
  metafile: true,
  legalComments: "none",
  logLevel: "warning",
});
await copyFile(join(here, "src/index.html"), join(dist, "index.html"));
await copyFile(join(here, "src/console.css"), join(dist, "console.css"));

// The packages whose code is in the bundle, and their licence texts.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (match) packages.set(match[1], join(here, "node_modules", match[1]));
}
const sections = [];
for (const [name, folder] of [...packages].sort()) {
  const manifest = JSON.parse(await readFile(join(folder, "package.json"), "utf8"));
  const licenceFile = (await readdir(folder)).find((file) => /^(licen[cs]e|copying)/i.test(file));
  if (!licenceFile) throw new Error(`${name} carries no licence file; cannot ship it`);
  const text = await readFile(join(folder, licenceFile), "utf8");
  sections.push(`${name} ${manifest.version} (${manifest.license})\n${"=".repeat(60)}\n${text.trim()}\n`);
}
await writeFile(
  join(dist, "LICENSES.txt"),
  `The Lakehouse console bundles these libraries, under these licences.\n\n${sections.join("\n")}`,
);
for (const file of await readdir(dist)) {
  const bytes = await readFile(join(dist, file));
  await writeFile(join(dist, `${file}.gz`), gzipSync(bytes, { level: constants.Z_BEST_COMPRESSION }));
}
console.log(`console: built ${Object.keys(result.metafile.outputs).length} bundle(s) with ${packages.size} libraries into ${dist}`);
