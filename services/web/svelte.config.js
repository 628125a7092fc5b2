import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
const config = {
	preprocess: vitePreprocess(),
	kit: {
		// Static files that nginx serves at `/`; unknown paths fall back to index.html
		// (`try_files $uri $uri/ /index.html` in deploy/local/nginx.conf.template).
		adapter: adapter({ pages: 'dist', assets: 'dist', fallback: 'index.html', strict: true })
	}
};

export default config;
