// Every page is prerendered at build time (in Node, where `window` does not exist: the
// build fails if a component touches it outside onMount), and nginx serves the files.
export const prerender = true;
export const trailingSlash = 'always';
