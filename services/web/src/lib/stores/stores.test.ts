import { afterEach, describe, expect, it, vi } from 'vitest';
import { HintStore } from '$lib/stores/hints.svelte';
import { PresenceStore } from '$lib/stores/presence.svelte';
import { ConnectionStore } from '$lib/stores/connection.svelte';
import { sessionFromToken } from '$lib/stores/session.svelte';
import { signInMessage } from '$lib/signin';
import { ApiError } from '$lib/sync/engine';
import type { Hint } from '$lib/protocol';

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
