#!/usr/bin/env node
// Fails when the source files of packages/*/src and apps/*/src import each other in a
// circle, type-only imports and dynamic import() included: each package and app must read
// from the top down. Imports of @gossip/* packages are followed to their src (an
// import of a package's entry is an import of its src/index.ts, a subpath of its
// src/<subpath>.ts). Run by `pnpm check:cycles`, which `pnpm ci` runs.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Every .ts file under each package's and app's src. */
function sources() {
  const files = [];
  for (const group of ['packages', 'apps']) {
    for (const name of readdirSync(join(root, group))) {
      const src = join(root, group, name, 'src');
      if (existsSync(src)) walk(src, files);
    }
  }
  return files;
}

function walk(dir, out) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (path.endsWith('.ts') && !path.endsWith('.d.ts')) out.push(path);
  }
}

/** `@gossip/<name>` → its folder, read from each package.json's name. */
function workspacePackages() {
  const map = new Map();
  for (const group of ['packages', 'apps']) {
    for (const name of readdirSync(join(root, group))) {
      const pkg = join(root, group, name, 'package.json');
      if (existsSync(pkg)) map.set(JSON.parse(readFileSync(pkg, 'utf8')).name, join(root, group, name));
    }
  }
  return map;
}

// import … from '…', export … from '…', import '…', import('…'); type-only forms included.
const IMPORT =
  /(?:^|[;\s])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function resolveImport(from, spec, packages) {
  if (spec.startsWith('.')) {
    const base = resolve(dirname(from), spec).replace(/\.js$/, '');
    for (const candidate of [`${base}.ts`, join(base, 'index.ts')]) if (existsSync(candidate)) return candidate;
    return undefined;
  }
  const m = /^(@gossip\/[^/]+|[^@/][^/]*)(?:\/(.+))?$/.exec(spec);
  const dir = m && packages.get(m[1]);
  if (!dir) return undefined; // node: built-ins and third-party packages
  const file = join(dir, 'src', `${m[2] ?? 'index'}.ts`);
  return existsSync(file) ? file : undefined;
}

function graph() {
  const packages = workspacePackages();
  const edges = new Map();
  for (const file of sources()) {
    const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '');
    const to = new Set();
    for (const m of text.matchAll(IMPORT)) {
      const target = resolveImport(file, m[1] ?? m[2], packages);
      if (target && target !== file) to.add(target);
    }
    edges.set(file, [...to]);
  }
  return edges;
}

/** Strongly connected components of more than one file, or of one file importing itself (Tarjan). */
function circles(edges) {
  let next = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  const visit = (v) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) === index.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) found.push(scc);
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}

const edges = graph();
const found = circles(edges);
if (found.length === 0) {
  console.log(`check-cycles: no import cycles among ${edges.size} source files`);
} else {
  console.error(`check-cycles: ${found.length} import cycle(s):`);
  for (const scc of found) {
    console.error(`- ${scc.length} files:`);
    const inCycle = new Set(scc);
    for (const file of scc.sort()) {
      const into = (edges.get(file) ?? []).filter((t) => inCycle.has(t)).map((t) => relative(root, t));
      console.error(`    ${relative(root, file)} → ${into.join(', ')}`);
    }
  }
  process.exitCode = 1;
}
