// Builds the pages into dist/: the agent desktop and the supervisors' wall board, each script
// bundled with JsSIP (esbuild, one IIFE file, no CDN), its HTML and CSS copied beside it.
import { build } from 'esbuild';
import { cpSync, mkdirSync } from 'node:fs';

// Each page: its directory under src/, its script bundled, its HTML and CSS copied.
const pages = { agent: ['index.html', 'agent.css'], board: ['index.html', 'board.css'] };
for (const [page, files] of Object.entries(pages)) {
  mkdirSync(`dist/${page}`, { recursive: true });
  await build({
    entryPoints: [`src/${page}/${page}.js`],
    bundle: true,
    format: 'iife',
    target: 'es2020',
    minify: true,
    sourcemap: true,
    outfile: `dist/${page}/${page}.js`,
    logLevel: 'warning',
  });
  for (const f of files) cpSync(`src/${page}/${f}`, `dist/${page}/${f}`);
}
console.log('web/dist built');
