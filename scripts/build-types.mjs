// `npm run build`, last step: the .d.ts files of the package's entry points.
// TypeScript writes them with the sources' `./x.ts` import paths; a consumer
// resolves `./x.js` (next to dist/types/x.d.ts), so those are rewritten.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const out = 'dist/types';
rmSync(out, { recursive: true, force: true });
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
let files = 0;
const walk = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (p.endsWith('.d.ts')) {
      const src = readFileSync(p, 'utf8');
      const fixed = src.replace(/(['"])(\.{1,2}\/[^'"]*?)\.ts\1/g, '$1$2.js$1');
      if (fixed !== src) writeFileSync(p, fixed);
      files++;
    }
  }
};
walk(out);
console.log(`types: ${files} declaration files in ${out}/`);
