import { afterEach, describe, expect, it, vi } from 'vitest';
import { HintStore } from '$lib/stores/hints.svelte';
import { PresenceStore } from '$lib/stores/presence.svelte';
import { ConnectionStore } from '$lib/stores/connection.svelte';
import { session, sessionFromToken } from '$lib/stores/session.svelte';
import { NoticeStore } from '$lib/stores/notices.svelte';
import { projects } from '$lib/stores/projects.svelte';
import { signInMessage } from '$lib/signin';
import { ApiError } from '$lib/sync/engine';
import type { Hint, Project } from '$lib/protocol';

const PROJECT = '3f6c2a9e-8d41-4b7a-9c55-2e1f0a7b6d13';

describe('hints', () => {
	afterEach(() => vi.useRealTimers());

	it('mark a card until their expiresAt, or until the same user says idle', () => {
		vi.useFakeTimers();
		const now = Date.now();
		const hints = new HintStore(() => Date.now());
		const hint: Hint = { projectId: PROJECT, ticketId: 't1', action: 'dragging', userId: 'bob', name: 'Bob', expiresAt: now + 5000 };
		hints.receive(hint);
		expect(hints.byTicket.get('t1')?.name).toBe('Bob');
		vi.advanceTimersByTime(4999);
		expect(hints.byTicket.has('t1')).toBe(true);
		vi.advanceTimersByTime(2);
		expect(hints.byTicket.has('t1')).toBe(false);
		expect(hints.recentBy('t1')?.name).toBe('Bob'); // still known as the last one to touch it

		hints.receive({ ...hint, expiresAt: Date.now() + 5000 });
		hints.receive({ ...hint, userId: 'carol', action: 'idle' }); // someone else's idle
		expect(hints.byTicket.has('t1')).toBe(true);
		hints.receive({ ...hint, action: 'idle' });
		expect(hints.byTicket.has('t1')).toBe(false);
	});
});

describe('presence', () => {
	it('replaces the whole list each time, counts users once, and remembers names', () => {
		const presence = new PresenceStore();
		presence.setCount(3); // the join ack's figure, until the list arrives
		expect(presence.count).toBe(3);
		presence.set({ projectId: PROJECT, userCount: 2, users: [{ id: 'alice', name: 'Alice' }, { id: 'bob', name: 'Bob' }] });
		presence.setCount(5); // a later ack does not override the list's count
		expect(presence.count).toBe(2);
		presence.set({ projectId: PROJECT, userCount: 1, users: [{ id: 'alice', name: 'Alice' }] });
		expect(presence.users.map((u) => u.id)).toEqual(['alice']);
		expect(presence.nameOf('bob')).toBe('Bob');
	});
});

describe('connection', () => {
	it('goes connected → reconnecting with the attempt → offline → connected', () => {
		const c = new ConnectionStore();
		c.connected('gw1~abc');
		expect([c.state, c.sessionId]).toEqual(['connected', 'gw1~abc']);
		c.reconnecting(3);
		expect([c.state, c.attempt]).toEqual(['reconnecting', 3]);
		c.offline();
		expect(c.state).toBe('offline');
		c.connected('gw2~def');
		expect([c.state, c.attempt]).toEqual(['connected', 0]);
	});
});

describe('sign-in', () => {
	it('reads user id, name and expiry from the token', () => {
		// base64url of the UTF-8 bytes, as a JWT carries them
		const payload = Buffer.from(JSON.stringify({ sub: 'alice', name: 'Alice Ünal', exp: 2_000_000_000 })).toString('base64url');
		const s = sessionFromToken(`e30.${payload}.sig`);
		expect(s).toMatchObject({ userId: 'alice', name: 'Alice Ünal', exp: 2_000_000_000 });
	});

	it('says clearly when development tokens are turned off', () => {
		expect(signInMessage(new ApiError(404, 'NOT_FOUND', 'no such route'))).toMatch(/Development sign-in is turned off/);
		expect(signInMessage(new ApiError(0, 'UNAVAILABLE', 'down'))).toMatch(/cannot be reached/);
	});
});

/** A JWT-shaped token (unsigned: the board only reads its claims). */
function token(claims: object): string {
	return `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
}

describe('session', () => {
	// Node has no sessionStorage: the browser's, as a plain map.
	const saved = new Map<string, string>();
	Object.defineProperty(globalThis, 'sessionStorage', {
		value: {
			getItem: (k: string) => saved.get(k) ?? null,
			setItem: (k: string, v: string) => void saved.set(k, v),
			removeItem: (k: string) => void saved.delete(k)
		},
		configurable: true
	});
	afterEach(() => {
		saved.clear();
		session.signOut();
	});
	const current = () => session.current;

	it("survives a reload of the tab until its token's expiry", () => {
		session.signIn(token({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 }));
		session.current = null; // a reload
		session.restore();
		expect(current()?.userId).toBe('alice');
		expect(session.token()).toBe(saved.get('kanban.session'));
		session.signOut();
		session.restore();
		expect(session.token()).toBeNull();
	});

	it('sends an expired token back to sign-in with the reason, and forgets it', () => {
		saved.set('kanban.session', token({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 1 }));
		session.restore();
		expect(current()).toBeNull();
		expect(session.reason).toMatch(/expired/);
		expect(saved.size).toBe(0);
		session.signIn(token({ sub: 'alice' })); // signing in again clears the reason
		expect(session.reason).toBe('');
	});

	it('makes no user of a token that is not a JWT', () => {
		expect(sessionFromToken('garbage')).toMatchObject({ userId: '', name: '', exp: null });
		expect(sessionFromToken('a.%%%.c')).toMatchObject({ userId: '', exp: null });
		expect(sessionFromToken(token({ sub: 'bob', exp: 'soon' }))).toMatchObject({ name: 'bob', exp: null });
	});
});

describe('notices', () => {
	it('keep the five newest errors, each dismissable by id', () => {
		const notices = new NoticeStore();
		for (let i = 1; i <= 7; i++) notices.error(`error ${i}`);
		expect(notices.errors.map((n) => n.text)).toEqual(['error 3', 'error 4', 'error 5', 'error 6', 'error 7']);
		notices.dismiss(notices.errors[0].id);
		expect(notices.errors).toHaveLength(4);
		notices.clearErrors();
		expect(notices.errors).toEqual([]);
	});

	it('announce the same text twice as two different strings, so it is read out again', () => {
		const notices = new NoticeStore();
		notices.announce('Card moved');
		const first = notices.announcement;
		notices.announce('Card moved');
		expect(notices.announcement).not.toBe(first);
		expect(notices.announcement.trim()).toBe('Card moved');
	});
});

describe('projects', () => {
	const project = (id: string, name: string): Project => ({
		id,
		name,
		description: null,
		createdAt: '2026-01-15T10:00:00.000Z',
		updatedAt: '2026-01-15T10:00:00.000Z'
	});

	it('lists a new board first, once, and follow renames and deletion of the open one', () => {
		projects.init([project('a', 'A'), project('b', 'B')]);
		projects.add(project('b', 'B again'));
		expect(projects.list.map((p) => p.name)).toEqual(['B again', 'A']);
		projects.setCurrent(project('a', 'A renamed'));
		expect(projects.list.map((p) => p.name)).toEqual(['B again', 'A renamed']);
		projects.setCurrent(null); // the open board was deleted
		expect(projects.list.map((p) => p.id)).toEqual(['b']);
		expect(projects.current).toBeNull();
		projects.setCurrent(null); // nothing open: nothing to remove
		expect(projects.list).toHaveLength(1);
	});
});
