// The signed-in user of this tab: the API token, kept in sessionStorage so that each tab
// can be a different user (two people side by side in one browser).
const KEY = 'kanban.session';

export interface Session {
	token: string;
	userId: string;
	name: string;
	/** Token expiry, seconds since the epoch (the JWT's `exp`). */
	exp: number | null;
}

function decodeClaims(token: string): { sub?: string; name?: string; exp?: number } {
	const part = token.split('.')[1];
	if (!part) return {};
	try {
		const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
		return JSON.parse(decodeURIComponent(escape(json)));
	} catch {
		return {};
	}
}

export function sessionFromToken(token: string): Session {
	const claims = decodeClaims(token);
	return {
		token,
		userId: claims.sub ?? '',
		name: claims.name || claims.sub || '',
		exp: typeof claims.exp === 'number' ? claims.exp : null
	};
}

class SessionStore {
	current = $state<Session | null>(null);
	/** False until the tab's session was read (and a scripted sign-in finished). */
	ready = $state(false);
	/** Why the person was sent back to sign in, shown there. */
	reason = $state('');

	/** Reads the tab's session (browser only). */
	restore(): void {
		const token = sessionStorage.getItem(KEY);
		if (!token) return;
		const session = sessionFromToken(token);
		if (session.exp !== null && session.exp * 1000 <= Date.now()) {
			this.expire();
			return;
		}
		this.current = session;
	}
	signIn(token: string): void {
		sessionStorage.setItem(KEY, token);
		this.current = sessionFromToken(token);
		this.reason = '';
	}
	signOut(): void {
		sessionStorage.removeItem(KEY);
		this.current = null;
	}
	/** The token was refused or ran out: sign in again. */
	expire(): void {
		this.signOut();
		this.reason = 'Your session has expired. Please sign in again.';
	}
	token(): string | null {
		return this.current?.token ?? null;
	}
}

export const session = new SessionStore();
