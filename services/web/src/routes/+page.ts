// The root is the SPA fallback (index.html), which nginx also serves for unknown paths.
export const prerender = false;
