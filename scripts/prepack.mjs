// Run by `pnpm pack` (and publish) in a package's folder: the tarball carries the
// repository's LICENSE and CHANGELOG.md, which live once, at the root.
import { copyFileSync } from 'node:fs';

for (const file of ['LICENSE', 'CHANGELOG.md']) copyFileSync(new URL(`../${file}`, import.meta.url), file);
