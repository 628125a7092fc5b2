// The board's socket and API client against the real stack (the built ticket-api and two
// gateways on free loopback ports, real PostgreSQL and Redis; e2e/stack.mjs without nginx
// and the built board). Node has no browser: the test gives `connectBoard` the three
// globals it uses (window's online/offline events, navigator.onLine, the page's location
// pointing at a gateway). Every wait is for a condition, under a deadline.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startStack } from '../../../e2e/stack.mjs';
import { Api } from '$lib/api/client';
import { BoardStore } from '$lib/stores/board.svelte';
import { ConnectionStore } from '$lib/stores/connection.svelte';
import { HintStore } from '$lib/stores/hints.svelte';
import { PresenceStore } from '$lib/stores/presence.svelte';
import { ApiError, SyncEngine } from '$lib/sync/engine';
import { connectBoard, type BoardConnection } from '$lib/sync/socket';

const WAIT_MS = 15_000;

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;

/** Polls `check` until it is true; fails with `what` after WAIT_MS. */
async function until(what: string, check: () => boolean): Promise<void> {
	const end = Date.now() + WAIT_MS;
	while (!check()) {
		if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 20));
	}
}

const browser = {
	online: true,
	window: new EventTarget()
};

beforeAll(async () => {
	stack = await startStack({ web: false });
	Object.defineProperty(globalThis, 'window', { value: browser.window, configurable: true });
	Object.defineProperty(globalThis, 'navigator', {
		value: {
			get onLine() {
				return browser.online;
			}
		},
		configurable: true
	});
}, 60_000);

afterAll(async () => {
	await stack?.stop();
});

/** Where `io()` without a URL connects: the page's origin, here a gateway. */
function pageAt(url: string) {
	Object.defineProperty(globalThis, 'location', { value: new URL(url), configurable: true });
}

async function signedIn(userId: string) {
	const anonymous = new Api(() => null, stack.api);
	const { token } = await anonymous.devToken(userId, userId.toUpperCase());
	return { token, api: new Api(() => token, stack.api) };
}

interface Opened {
	connection: BoardConnection;
	engine: SyncEngine;
	store: BoardStore;
	state: ConnectionStore;
	presence: PresenceStore;
	hints: HintStore;
	errors: string[];
	readonly unauthorized: number;
}

const opened: Opened[] = [];
afterEach(() => {
	for (const o of opened.splice(0)) o.connection.close();
	browser.online = true;
});

async function open(projectId: string, userId: string, token: string, api: Api): Promise<Opened> {
	const store = new BoardStore();
	const errors: string[] = [];
	const counts = { unauthorized: 0 };
	const hooks = {
		error: (text: string) => void errors.push(text),
		unauthorized: () => void counts.unauthorized++
	};
	const engine = new SyncEngine({ projectId, userId, store, api, hooks });
	await engine.load().catch(() => {}); // refused for a stranger: the join says why
	const state = new ConnectionStore();
	const presence = new PresenceStore();
	const hints = new HintStore();
	const connection = connectBoard({ projectId, token, userId, engine, connection: state, presence, hints, ...hooks });
	const result: Opened = {
		connection,
		engine,
		store,
		state,
		presence,
		hints,
		errors,
		get unauthorized() {
			return counts.unauthorized;
		}
	};
	opened.push(result);
	return result;
}

describe('the API client', () => {
	it('signs in, creates a board and reads it back with its members', async () => {
		const { api } = await signedIn('alice');
		const project = await api.createProject('Client board', 'made by the test');
		expect((await api.projects()).map((p) => p.id)).toContain(project.id);
		const snapshot = await api.snapshot(project.id);
		expect([snapshot.project.name, snapshot.tickets, snapshot.seq]).toEqual(['Client board', [], 0]);
		await api.addMember(project.id, 'bob', 'member');
		expect((await api.members(project.id)).map((m) => m.userId).sort()).toEqual(['alice', 'bob']);
		expect(await api.events(project.id, 0)).toMatchObject({ truncated: false });
	});

	it("turns the server's error body into an ApiError with its status and code", async () => {
		const { api } = await signedIn('alice');
		const missing = '00000000-0000-4000-8000-000000000000';
		const refusal = await api.snapshot(missing).catch((e) => e);
		expect(refusal).toBeInstanceOf(ApiError);
		expect([refusal.status, refusal.code]).toEqual([404, 'NOT_FOUND']);

		const stranger = new Api(() => 'not-a-token', stack.api);
		const unauthorized = await stranger.projects().catch((e) => e);
		expect([unauthorized.status, unauthorized.code]).toEqual([401, 'UNAUTHORIZED']);

		const invalid = await api.createProject('').catch((e) => e);
		expect([invalid.status, invalid.code]).toEqual([400, 'VALIDATION']);
	});

	it('reports a server that cannot be reached as UNAVAILABLE (status 0)', async () => {
		// The API's port, once it is stopped, refuses connections: use a port nothing holds.
		const { createServer } = await import('node:net');
		const port = await new Promise<number>((resolve) => {
			const server = createServer().listen(0, '127.0.0.1', () => {
				const address = server.address();
				server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
			});
		});
		const gone = new Api(() => null, `http://127.0.0.1:${port}`);
		const error = await gone.projects().catch((e) => e);
		expect(error).toBeInstanceOf(ApiError);
		expect([error.status, error.code]).toEqual([0, 'UNAVAILABLE']);
	});
});

describe('the board socket', () => {
	it('joins, applies the events of other users and gets its own changes acknowledged', async () => {
		const alice = await signedIn('alice');
		const project = await alice.api.createProject('Live board');
		pageAt(stack.gateways.gw1);
		const board = await open(project.id, 'alice', alice.token, alice.api);
		await until('connected', () => board.state.state === 'connected');
		expect(board.connection.sessionId()).toMatch(/^gw1~/);
		expect(board.state.sessionId).toBe(board.connection.sessionId());

		// Another client's ticket, through the REST API, arrives as a board event.
		const created = await alice.api.request<{ id: string }>('POST', `/api/projects/${project.id}/tickets`, {
			title: 'From REST'
		});
		await until('the created ticket', () => board.store.has(created.id));

		// This client's own change goes over the socket and is settled by its ack.
		board.engine.create({ title: 'From the socket' });
		await until('the ack', () => board.engine.pendingCount === 0 && board.store.count === 2);
		expect(board.store.all().map((c) => c.title).sort()).toEqual(['From REST', 'From the socket']);
		expect(board.errors).toEqual([]);
	});

	it('tells a user who is not a member that the board does not exist', async () => {
		const alice = await signedIn('alice');
		const mallory = await signedIn('mallory');
		const project = await alice.api.createProject('Private board');
		pageAt(stack.gateways.gw2);
		const board = await open(project.id, 'mallory', mallory.token, mallory.api);
		await until('the refusal', () => board.errors.some((e) => e.includes('does not exist')));
		expect(board.state.state).not.toBe('connected');
	});

	it('sends a refused token back to sign-in', async () => {
		const alice = await signedIn('alice');
		const project = await alice.api.createProject('Board');
		pageAt(stack.gateways.gw1);
		const board = await open(project.id, 'alice', 'expired-or-forged', alice.api);
		await until('unauthorized', () => board.unauthorized > 0);
		expect(board.state.state).not.toBe('connected');
	});

	it('reconnects after its gateway dies and catches up on what it missed', async () => {
		const alice = await signedIn('alice');
		const project = await alice.api.createProject('Outage board');
		pageAt(stack.gateways.gw2);
		const board = await open(project.id, 'alice', alice.token, alice.api);
		await until('connected', () => board.state.state === 'connected');

		stack.kill('gw2');
		await until('reconnecting', () => board.state.state === 'reconnecting');
		// A change made while the socket is down waits in the queue…
		board.engine.create({ title: 'Made offline' });
		// …and so does one by someone else, which only the catch-up can deliver.
		const missed = await alice.api.request<{ id: string }>('POST', `/api/projects/${project.id}/tickets`, {
			title: 'Missed'
		});
		expect(board.store.has(missed.id)).toBe(false);

		await stack.restart('gw2');
		await until('connected again', () => board.state.state === 'connected');
		await until('caught up and settled', () => board.store.has(missed.id) && board.engine.pendingCount === 0);
		const titles = (await alice.api.snapshot(project.id)).tickets.map((t) => t.title).sort();
		expect(titles).toEqual(['Made offline', 'Missed']);
		expect(board.store.count).toBe(2);
	}, 60_000);

	it('goes offline when the browser does, queues changes, and sends them once online', async () => {
		const alice = await signedIn('alice');
		const project = await alice.api.createProject('Offline board');
		pageAt(stack.gateways.gw1);
		const board = await open(project.id, 'alice', alice.token, alice.api);
		await until('connected', () => board.state.state === 'connected');

		browser.online = false;
		browser.window.dispatchEvent(new Event('offline'));
		expect(board.state.state).toBe('offline');
		board.engine.create({ title: 'Queued' });
		expect(board.engine.pendingCount).toBe(1);

		browser.online = true;
		browser.window.dispatchEvent(new Event('online'));
		await until('sent after reconnecting', () => board.state.state === 'connected' && board.engine.pendingCount === 0);
		expect((await alice.api.snapshot(project.id)).tickets.map((t) => t.title)).toEqual(['Queued']);
	});

	it('starts offline when the browser already is', async () => {
		const alice = await signedIn('alice');
		const project = await alice.api.createProject('Board');
		browser.online = false;
		pageAt(stack.gateways.gw1);
		const board = await open(project.id, 'alice', alice.token, alice.api);
		expect(board.state.state).toBe('offline');
		browser.online = true;
		browser.window.dispatchEvent(new Event('online'));
		await until('connected', () => board.state.state === 'connected');
	});

	it("shows other users' presence and hints, never one's own, and sends only the newest of quick hints", async () => {
		const alice = await signedIn('alice');
		const bob = await signedIn('bob');
		const project = await alice.api.createProject('Shared board');
		await alice.api.addMember(project.id, 'bob', 'member');
		const ticket = await alice.api.request<{ id: string }>('POST', `/api/projects/${project.id}/tickets`, {
			title: 'Shared'
		});
		pageAt(stack.gateways.gw1);
		const a = await open(project.id, 'alice', alice.token, alice.api);
		pageAt(stack.gateways.gw2);
		const b = await open(project.id, 'bob', bob.token, bob.api);
		await until('both connected', () => a.state.state === 'connected' && b.state.state === 'connected');
		await until('presence of both', () => a.presence.count === 2 && b.presence.count === 2);
		expect(a.presence.nameOf('bob')).toBe('BOB');

		// Two hints closer together than the gateway allows: the first is sent, the second
		// held and sent after the gap (a refused one would be lost).
		a.connection.hint(ticket.id, 'dragging');
		a.connection.hint(ticket.id, 'editing');
		await until("alice's newest hint at bob", () => b.hints.byTicket.get(ticket.id)?.action === 'editing');
		expect(b.hints.byTicket.get(ticket.id)?.name).toBe('ALICE');
		expect(a.hints.byTicket.has(ticket.id)).toBe(false);

		// Bob leaves: alice's list shrinks to herself.
		b.connection.close();
		await until('bob gone', () => a.presence.count === 1);
		expect(a.presence.users.map((u) => u.id)).toEqual(['alice']);
	}, 30_000);
});
