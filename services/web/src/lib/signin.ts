import type { ApiError } from '$lib/sync/engine';

/** What to tell the person when a development sign-in fails. */
export function signInMessage(err: ApiError | null): string {
	if (err && err.status === 404) {
		return 'Development sign-in is turned off on this server (auth.dev_tokens). Sign in with a token from your identity provider instead.';
	}
	if (err && err.status === 400) return `Sign-in refused: ${err.message}.`;
	if (err && err.status === 0) return 'The server cannot be reached. Is the stack running?';
	return `Sign-in failed: ${err?.message ?? 'unknown error'}.`;
}
