import { readFileSync } from 'node:fs';
import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vitest/config';

// What the coverage gate measures, excludes and enforces is kept in one place for the
// Rust crates and the board: the repository's coverage.json (docs/testing.md).
const gate = JSON.parse(readFileSync(new URL('../../coverage.json', import.meta.url), 'utf8')) as {
	min_line_percent: number;
	gated: string[];
	web_include: string[];
	exclude: { paths?: string[] }[];
};
const WEB = 'services/web/';
const webPaths = (globs: string[]) =>
	globs.filter((g) => g.startsWith(WEB) || g.startsWith('**/')).map((g) => g.replace(WEB, ''));

// `npm run dev` proxies the API and the gateways to a running stack (scripts/dev-up.sh),
// so the board talks to the same origin as in production. KANBAN_URL picks the stack.
const target = process.env.KANBAN_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
	plugins: [sveltekit()],
	server: {
		proxy: {
			'/api': { target, changeOrigin: false },
			'/socket.io': { target, ws: true, changeOrigin: false }
		}
	},
	test: {
		include: ['src/**/*.test.ts'],
		environment: 'node',
		// On with `vitest run --coverage` (scripts/test-web.sh).
		coverage: {
			provider: 'v8',
			include: webPaths(gate.web_include),
			exclude: webPaths(gate.exclude.flatMap((rule) => rule.paths ?? [])),
			reporter: ['text', 'json-summary'],
			reportsDirectory: 'coverage',
			thresholds: gate.gated.includes('web') ? { lines: gate.min_line_percent } : undefined
		}
	}
});
