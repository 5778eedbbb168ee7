// `pnpm --filter gossipd run build:sea [out]`: gossipd as one executable file, with Node's
// single-executable-application support. It takes the bundle the build wrote
// (dist/main.cjs, which needs nothing but Node's built-in modules, as such an executable
// can require() nothing else), makes Node's preparation blob of it, and injects that blob
// into a copy of this Node binary with postject. The result runs without Node or any
// file beside it: `<out> --help`. Default out: dist/sea/gossipd. Linux and other ELF
// systems (macOS and Windows would also need their binary signed again).
//
// The blob carries V8's code cache of the bundle (`useCodeCache`, Node's own SEA
// option): a start then compiles nothing it already compiled here. The cache fits the
// V8 of the Node binary that made it, which is the binary the executable is a copy of.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'postject';

/** The fuse Node's binary carries for this (Node's docs, "Single executable applications"). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const app = fileURLToPath(new URL('..', import.meta.url));
const bundle = join(app, 'dist/main.cjs');
const out = resolve(process.argv[2] ?? join(app, 'dist/sea/gossipd'));
if (!existsSync(bundle)) {
  process.stderr.write(`no ${bundle}: build gossipd first (npx -y pnpm@10 build)\n`);
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'gossipd-sea-'));
try {
  const blob = join(work, 'sea-prep.blob');
  const config = join(work, 'sea-config.json');
  writeFileSync(
    config,
    JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }),
  );
  execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  mkdirSync(dirname(out), { recursive: true });
  rmSync(out, { force: true });
  copyFileSync(process.execPath, out);
  chmodSync(out, 0o755);
  await inject(out, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SEA_FUSE });
  const version = execFileSync(out, ['--version'], { encoding: 'utf8' }).trim();
  process.stdout.write(`${out}: ${version}, ${process.version}'s runtime inside\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
