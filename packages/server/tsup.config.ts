import { defineConfig } from 'tsup';
import { esmOnly } from '../../tsup.base.js';

export default defineConfig({
  ...esmOnly,
  entry: { index: 'src/index.ts' },
});
