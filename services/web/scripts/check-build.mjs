// Runs after `vite build`: the static output is what nginx serves, and the prerendered
// board page shows that the whole component tree rendered in Node (no `window`), i.e.
// that nothing touches the browser before onMount and no socket was created at build time.
import { existsSync, readFileSync } from 'node:fs';

const fail = (message) => {
	console.error(`check-build: ${message}`);
	process.exit(1);
};
for (const file of ['dist/index.html', 'dist/board/index.html']) {
	if (!existsSync(file)) fail(`${file} is missing`);
}
const board = readFileSync('dist/board/index.html', 'utf8');
const columns = [...board.matchAll(/data-status="([A-Z_]+)"/g)].map((m) => m[1]);
const expected = ['BACKLOG', 'TODO', 'IN_PROGRESS', 'NEEDS_FEEDBACK', 'READY_TO_RESUME', 'DONE'];
if (columns.join() !== expected.join()) fail(`prerendered board has columns ${columns.join()}`);
if (!board.includes('data-connection=')) fail('prerendered board has no connection indicator');
console.log('check-build: dist/ ok; the board was prerendered without a browser');
