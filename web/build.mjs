// Builds the pages into dist/: the agent desktop's script bundled with JsSIP (esbuild, one
// IIFE file, no CDN), its HTML and CSS copied beside it.
import { build } from 'esbuild';
import { cpSync, mkdirSync } from 'node:fs';

mkdirSync('dist/agent', { recursive: true });
await build({
  entryPoints: ['src/agent/agent.js'],
  bundle: true,
  format: 'iife',
  target: 'es2020',
  minify: true,
  sourcemap: true,
  outfile: 'dist/agent/agent.js',
  logLevel: 'warning',
});
for (const f of ['index.html', 'agent.css']) {
  cpSync(`src/agent/${f}`, `dist/agent/${f}`);
}
console.log('web/dist built');
