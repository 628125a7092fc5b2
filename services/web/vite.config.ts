import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vitest/config';

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
		environment: 'node'
	}
});
