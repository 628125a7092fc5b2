import { describe, expect, it, beforeEach } from 'vitest';
import { BoardStore } from '$lib/stores/board.svelte';
import { ApiError, SyncEngine, type AckResult, type BoardApi } from '$lib/sync/engine';
import type { BoardSnapshot, BoardEventEnvelope, EventMeta, Ticket, TicketStatus } from '$lib/protocol';

const PROJECT = '3f6c2a9e-8d41-4b7a-9c55-2e1f0a7b6d13';

function ticket(id: string, status: TicketStatus, rank: string, extra: Partial<Ticket> = {}): Ticket {
	return {
		id,
		projectId: PROJECT,
		title: `Ticket ${id}`,
		description: null,
		status,
		priority: 'MEDIUM',
		labels: [],
		rank,
		position: 0,
		version: 1,
		createdAt: '2026-01-15T10:00:00.000Z',
		updatedAt: '2026-01-15T10:00:00.000Z',
		...extra
	};
}

function meta(seq: number, mutationId?: string): EventMeta {
	return { projectId: PROJECT, seq, ts: 1_768_471_000_000 + seq, mutationId };
}

interface Sent {
	event: string;
	payload: Record<string, unknown>;
	done: (ack: AckResult | null) => void;
}

class FakeApi implements BoardApi {
	snapshotValue: BoardSnapshot;
	log: BoardEventEnvelope[] = [];
	truncated = false;
	snapshotCalls = 0;
	eventCalls: number[] = [];
	transitionsBy: Record<string, string> = {};
	failEvents: unknown = null;
	constructor(snapshot: BoardSnapshot) {
		this.snapshotValue = snapshot;
	}
	async snapshot() {
		this.snapshotCalls++;
		return structuredClone(this.snapshotValue);
	}
	async events(_project: string, since: number) {
		this.eventCalls.push(since);
		if (this.failEvents) throw this.failEvents;
		return { events: this.log.filter((e) => e.seq > since), truncated: this.truncated };
	}
	async transitions(ticketId: string) {
		const by = this.transitionsBy[ticketId];
		return by
			? [
					{
						id: 1,
						ticketId,
						fromStatus: 'TODO' as const,
						toStatus: 'IN_PROGRESS' as const,
						triggeredBy: by,
						reason: null,
						at: '2026-01-15T10:01:00.000Z'
					}
				]
			: [];
	}
}

function envelope(seq: number, event: string, data: unknown, mutationId?: string): BoardEventEnvelope {
	return { projectId: PROJECT, seq, event, data, ts: 0, mutationId } as BoardEventEnvelope;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

function setup(tickets: Ticket[], seq = 5) {
	const store = new BoardStore();
	const api = new FakeApi({
		project: { id: PROJECT, name: 'B', description: null, createdAt: '', updatedAt: '' },
		tickets,
		seq
	});
	const sent: Sent[] = [];
	const errors: string[] = [];
	let unauthorized = 0;
	let ids = 0;
	const scheduled: Array<() => void> = [];
	const hints: Record<string, { userId: string; name: string }> = {};
	const pendingCounts: number[] = [];
	const engine = new SyncEngine({
		projectId: PROJECT,
		userId: 'alice',
		store,
		api,
		hooks: {
			error: (text) => errors.push(text),
			unauthorized: () => unauthorized++,
			recentHint: (id) => hints[id],
			nameOf: (id) => ({ bob: 'Bob' })[id],
			pending: (count) => pendingCounts.push(count)
		},
		newId: () => `mut-${++ids}`,
		schedule: (fn) => scheduled.push(fn)
	});
	engine.setTransport({
		send: (command, done) =>
			sent.push({ event: command.event, payload: command.payload as Record<string, unknown>, done })
	});
	return {
		store,
		api,
		engine,
		sent,
		errors,
		hints,
		scheduled,
		pendingCounts,
		unauthorized: () => unauthorized,
		ids: (status: TicketStatus) => store.columns[status].items.map((c) => c.id)
	};
}

describe('derived columns', () => {
	it('group tickets by status, sorted by rank in byte order with ties broken by id', async () => {
		const t = setup([
			ticket('b', 'TODO', 'V'),
			ticket('a', 'TODO', 'V'),
			ticket('c', 'TODO', 'a'), // lower-case sorts after upper-case in byte order
			ticket('d', 'TODO', 'Z'),
			ticket('e', 'DONE', 'V')
		]);
		await t.engine.load();
		expect(t.ids('TODO')).toEqual(['a', 'b', 'd', 'c']);
		expect(t.ids('DONE')).toEqual(['e']);
		expect(t.ids('BACKLOG')).toEqual([]);
		expect(t.store.count).toBe(5);
		expect(t.engine.lastSeq).toBe(5);
	});
});

describe('remote events', () => {
	let t: ReturnType<typeof setup>;
	beforeEach(async () => {
		t = setup([ticket('a', 'TODO', 'V'), ticket('b', 'TODO', 'k')]);
		await t.engine.load();
	});

	it('a remote create adds the card in rank order', () => {
		t.engine.receive('ticket:created', ticket('c', 'TODO', 'a'), meta(6));
		expect(t.ids('TODO')).toEqual(['a', 'c', 'b']);
		expect(t.engine.lastSeq).toBe(6);
	});

	it('a remote update replaces the card in place', () => {
		t.engine.receive('ticket:updated', ticket('a', 'TODO', 'V', { title: 'New', version: 2 }), meta(6));
		expect(t.store.get('a')?.title).toBe('New');
		expect(t.ids('TODO')).toEqual(['a', 'b']);
	});

	it('a remote move takes the card to its new column and rank', () => {
		const moved = ticket('b', 'IN_PROGRESS', 'V', { version: 2 });
		t.engine.receive(
			'ticket:moved',
			{ ticketId: 'b', fromStatus: 'TODO', toStatus: 'IN_PROGRESS', projectId: PROJECT, position: 0, rank: 'V', ticket: moved },
			meta(6)
		);
		expect(t.ids('TODO')).toEqual(['a']);
		expect(t.ids('IN_PROGRESS')).toEqual(['b']);
	});

	it('a remote delete removes the card, and a late event about it does not bring it back', () => {
		t.engine.receive('ticket:deleted', 'a', meta(6));
		expect(t.store.has('a')).toBe(false);
		t.engine.receive('ticket:updated', ticket('a', 'TODO', 'V', { version: 9 }), meta(7));
		expect(t.store.has('a')).toBe(false);
	});

	it('column:rebalanced replaces ranks and keeps the order', () => {
		t.engine.receive(
			'column:rebalanced',
			{ projectId: PROJECT, status: 'TODO', ranks: [{ ticketId: 'a', rank: 'F' }, { ticketId: 'b', rank: 'G' }] },
			meta(6)
		);
		expect(t.store.get('a')?.rank).toBe('F');
		expect(t.ids('TODO')).toEqual(['a', 'b']);
	});

	it('a duplicate or old seq is ignored', () => {
		t.engine.receive('ticket:updated', ticket('a', 'TODO', 'V', { title: 'Once', version: 2 }), meta(6));
		t.engine.receive('ticket:updated', ticket('a', 'TODO', 'V', { title: 'Twice', version: 3 }), meta(6));
		t.engine.receive('ticket:updated', ticket('a', 'TODO', 'V', { title: 'Old', version: 4 }), meta(3));
		expect(t.store.get('a')?.title).toBe('Once');
		expect(t.engine.lastSeq).toBe(6);
	});

	it('events that arrive out of order are applied in seq order', async () => {
		t.engine.receive('ticket:updated', ticket('a', 'TODO', 'V', { title: 'Second', version: 3 }), meta(7));
		expect(t.store.get('a')?.title).toBe('Ticket a'); // held back: 6 is missing
		t.engine.receive('ticket:updated', ticket('a', 'TODO', 'V', { title: 'First', version: 2 }), meta(6));
		await settle();
		expect(t.store.get('a')?.title).toBe('Second');
		expect(t.engine.lastSeq).toBe(7);
	});

	it('a gap is filled from the event log before later events apply', async () => {
		t.api.log = [
			envelope(6, 'ticket:created', ticket('c', 'BACKLOG', 'V')),
			envelope(7, 'ticket:updated', ticket('c', 'BACKLOG', 'V', { title: 'From the log', version: 2 }))
		];
		t.engine.receive('ticket:deleted', 'c', meta(8));
		await settle();
		expect(t.api.eventCalls).toEqual([5]);
		expect(t.store.has('c')).toBe(false); // created, updated, then deleted: in that order
		expect(t.engine.lastSeq).toBe(8);
	});

	it('a gap the log cannot fill (truncated) reloads the snapshot', async () => {
		t.api.truncated = true;
		t.api.snapshotValue = { ...t.api.snapshotValue, tickets: [ticket('z', 'DONE', 'V')], seq: 40 };
		t.engine.receive('ticket:updated', ticket('a', 'TODO', 'V', { version: 2 }), meta(30));
		await settle();
		expect(t.api.snapshotCalls).toBe(2);
		expect(t.store.all().map((c) => c.id)).toEqual(['z']);
		expect(t.engine.lastSeq).toBe(40);
	});

	it('project:resync reloads the snapshot and continues after its seq', async () => {
		t.api.snapshotValue = { ...t.api.snapshotValue, tickets: [ticket('a', 'DONE', 'V', { version: 7 })], seq: 50 };
		await t.engine.resync({ projectId: PROJECT, reason: 'history_unavailable', seq: 50 });
		expect(t.ids('DONE')).toEqual(['a']);
		t.engine.receive('ticket:created', ticket('n', 'TODO', 'V'), meta(50)); // already in the snapshot
		expect(t.store.has('n')).toBe(false);
		t.engine.receive('ticket:created', ticket('n', 'TODO', 'V'), meta(51));
		expect(t.store.has('n')).toBe(true);
	});

	it('an event costs one column, not the board: other columns keep their arrays', () => {
		const backlog = t.store.columns.BACKLOG.items;
		const done = t.store.columns.DONE.items;
		t.engine.receive('ticket:updated', ticket('a', 'TODO', 'V', { title: 'x', version: 2 }), meta(6));
		expect(t.store.columns.BACKLOG.items).toBe(backlog);
		expect(t.store.columns.DONE.items).toBe(done);
	});

	it('a catch-up refused with 401 sends the person back to sign in', async () => {
		t.api.failEvents = new ApiError(401, 'UNAUTHORIZED', 'expired');
		t.engine.receive('ticket:deleted', 'a', meta(9));
		await settle();
		expect(t.unauthorized()).toBe(1);
	});
});

describe('optimistic changes', () => {
	let t: ReturnType<typeof setup>;
	beforeEach(async () => {
		t = setup([ticket('a', 'TODO', 'V'), ticket('b', 'TODO', 'k'), ticket('c', 'BACKLOG', 'V')]);
		await t.engine.load();
		t.engine.joined();
	});

	it('a move shows at once, pending, and is sent with a mutationId and expectedVersion', () => {
		expect(t.engine.move('a', 'IN_PROGRESS', 0)).toBe(true);
		expect(t.ids('IN_PROGRESS')).toEqual(['a']);
		expect(t.store.get('a')?.pending).toBe(true);
		expect(t.sent).toHaveLength(1);
		expect(t.sent[0].event).toBe('ticket:move');
		expect(t.sent[0].payload).toMatchObject({ ticketId: 'a', toStatus: 'IN_PROGRESS', expectedVersion: 1, mutationId: 'mut-1' });
	});

	it('the ack confirms the move, and its echo is not applied a second time', () => {
		t.engine.move('a', 'IN_PROGRESS', 0);
		const server = ticket('a', 'IN_PROGRESS', 'V', { version: 2 });
		t.sent[0].done({ ok: true, ticket: server, fromStatus: 'TODO' });
		expect(t.store.get('a')).toMatchObject({ status: 'IN_PROGRESS', version: 2, pending: false });
		t.engine.receive(
			'ticket:moved',
			{ ticketId: 'a', fromStatus: 'TODO', toStatus: 'IN_PROGRESS', projectId: PROJECT, position: 0, rank: 'V', ticket: server },
			meta(6, 'mut-1')
		);
		expect(t.store.get('a')).toMatchObject({ status: 'IN_PROGRESS', version: 2, pending: false });
		expect(t.ids('IN_PROGRESS')).toEqual(['a']);
	});

	it('an echo that arrives before the ack settles the change (no double version bump)', () => {
		t.engine.move('a', 'IN_PROGRESS', 0);
		const server = ticket('a', 'IN_PROGRESS', 'V', { version: 2 });
		t.engine.receive(
			'ticket:moved',
			{ ticketId: 'a', fromStatus: 'TODO', toStatus: 'IN_PROGRESS', projectId: PROJECT, position: 0, rank: 'V', ticket: server },
			meta(6, 'mut-1')
		);
		expect(t.store.get('a')).toMatchObject({ version: 2, pending: false, rank: 'V' });
		t.sent[0].done({ ok: true, ticket: server, fromStatus: 'TODO' });
		expect(t.store.get('a')).toMatchObject({ version: 2, pending: false });
		expect(t.engine.pendingCount).toBe(0);
	});

	it('a create shows a pending card that the own echo replaces: one card, never two', () => {
		const temp = t.engine.create({ title: 'New card' }, 'BACKLOG');
		expect(t.ids('BACKLOG')).toEqual(['c', temp]);
		const created = ticket('n', 'BACKLOG', 'k', { title: 'New card' });
		t.engine.receive('ticket:created', created, meta(6, 'mut-1'));
		expect(t.ids('BACKLOG')).toEqual(['c', 'n']);
		t.sent[0].done({ ok: true, ...created });
		expect(t.ids('BACKLOG')).toEqual(['c', 'n']);
		expect(t.store.get('n')?.pending).toBe(false);
	});

	it('an edit and a delete are optimistic too', () => {
		t.engine.update('a', { title: 'Renamed' });
		expect(t.store.get('a')).toMatchObject({ title: 'Renamed', pending: true });
		t.sent[0].done({ ok: true, ...ticket('a', 'TODO', 'V', { title: 'Renamed', version: 2 }) });
		expect(t.store.get('a')).toMatchObject({ title: 'Renamed', pending: false, version: 2 });
		t.engine.remove('b');
		expect(t.store.has('b')).toBe(false);
		expect(t.sent[1].payload).toMatchObject({ ticketId: 'b', expectedVersion: 1 });
		t.sent[1].done({ ok: true });
		expect(t.store.has('b')).toBe(false);
	});

	it('a 409 rolls back exactly that move; a change that arrived meanwhile stays; the message names who', async () => {
		t.hints.a = { userId: 'bob', name: 'Bob' };
		t.engine.move('a', 'IN_PROGRESS', 0);
		// Meanwhile: Bob renames c and moves a to BACKLOG.
		t.engine.receive('ticket:updated', ticket('c', 'BACKLOG', 'V', { title: 'Bob was here', version: 2 }), meta(6));
		const bobs = ticket('a', 'BACKLOG', 'k', { version: 2 });
		t.engine.receive(
			'ticket:moved',
			{ ticketId: 'a', fromStatus: 'TODO', toStatus: 'BACKLOG', projectId: PROJECT, position: 1, rank: 'k', ticket: bobs },
			meta(7, 'bob-mutation')
		);
		expect(t.ids('IN_PROGRESS')).toEqual(['a']); // still ours while pending
		t.sent[0].done({
			ok: false,
			error: { code: 'VERSION_CONFLICT', message: 'ticket has version 2, expected 1', details: { ticket: bobs } }
		});
		await settle();
		expect(t.ids('IN_PROGRESS')).toEqual([]);
		expect(t.ids('BACKLOG')).toEqual(['c', 'a']);
		expect(t.store.get('c')?.title).toBe('Bob was here');
		expect(t.store.get('a')).toMatchObject({ version: 2, pending: false });
		expect(t.errors).toEqual(['Your move of "Ticket a" was undone: Bob moved it to Backlog first.']);
	});

	it('without a hint, the name comes from the ticket history', async () => {
		t.api.transitionsBy.a = 'bob';
		t.engine.move('a', 'BACKLOG', 0);
		const current = ticket('a', 'IN_PROGRESS', 'V', { version: 2 });
		t.sent[0].done({ ok: false, error: { code: 'VERSION_CONFLICT', message: 'conflict', details: { ticket: current } } });
		await settle();
		expect(t.errors).toEqual(['Your move of "Ticket a" was undone: Bob moved it to In progress first.']);
		expect(t.ids('IN_PROGRESS')).toEqual(['a']);
	});

	it('a move the state machine forbids is refused before anything is sent', () => {
		expect(t.engine.move('c', 'DONE', 0)).toBe(false);
		expect(t.sent).toHaveLength(0);
		expect(t.ids('BACKLOG')).toEqual(['c']);
		expect(t.errors[0]).toContain('cannot go to Done');
	});

	it('a refused transition from the server rolls back with a message', async () => {
		t.engine.move('a', 'IN_PROGRESS', 0);
		t.sent[0].done({ ok: false, error: { code: 'INVALID_TRANSITION', message: 'Invalid transition from TODO to IN_PROGRESS' } });
		await settle();
		expect(t.ids('TODO')).toEqual(['a', 'b']);
		expect(t.errors[0]).toContain('was refused');
	});

	it('a move whose neighbour left the column is sent again, placed by index, with the same mutationId', () => {
		t.engine.move('c', 'TODO', 1); // between a and b
		expect(t.sent[0].payload).toMatchObject({ afterId: 'a' });
		t.sent[0].done({ ok: false, error: { code: 'VALIDATION', message: 'afterId is not in the target column' } });
		expect(t.sent).toHaveLength(2);
		expect(t.sent[1].payload).toMatchObject({ position: 1, mutationId: t.sent[0].payload.mutationId });
		expect(t.sent[1].payload).not.toHaveProperty('afterId');
		t.sent[1].done({ ok: false, error: { code: 'VALIDATION', message: 'still wrong' } });
		expect(t.sent).toHaveLength(2); // once only, then rolled back
		expect(t.ids('BACKLOG')).toEqual(['c']);
	});

	it('a reorder is placed next to a neighbour the server has in that column', () => {
		t.engine.move('b', 'TODO', 0);
		expect(t.ids('TODO')).toEqual(['b', 'a']);
		expect(t.sent[0].payload).toMatchObject({ toStatus: 'TODO', beforeId: 'a' });
		t.sent[0].done({ ok: true, ticket: ticket('b', 'TODO', 'F', { version: 2 }), fromStatus: 'TODO' });
		t.engine.move('c', 'TODO', 2);
		expect(t.sent[1].payload).toMatchObject({ afterId: 'a' });
	});
});

describe('offline queue', () => {
	it('changes made while disconnected are sent in order after the rejoin, pending until acked', async () => {
		const t = setup([ticket('a', 'TODO', 'V'), ticket('b', 'BACKLOG', 'V')]);
		await t.engine.load();
		t.engine.disconnected();
		t.engine.move('a', 'IN_PROGRESS', 0);
		t.engine.update('b', { title: 'Offline edit' });
		expect(t.sent).toHaveLength(0);
		expect(t.store.get('a')?.pending).toBe(true);
		t.engine.joined();
		expect(t.sent.map((s) => s.event)).toEqual(['ticket:move']); // one at a time, in order
		t.sent[0].done({ ok: true, ticket: ticket('a', 'IN_PROGRESS', 'V', { version: 2 }), fromStatus: 'TODO' });
		expect(t.sent.map((s) => s.event)).toEqual(['ticket:move', 'ticket:update']);
		expect(t.store.get('b')?.pending).toBe(true);
		t.sent[1].done({ ok: true, ...ticket('b', 'BACKLOG', 'V', { title: 'Offline edit', version: 2 }) });
		expect(t.store.get('b')?.pending).toBe(false);
		expect(t.engine.pendingCount).toBe(0);
		expect(t.pendingCounts).toEqual([1, 2, 1, 0]); // what the indicator shows
	});

	it('a command in flight when the socket drops is sent again with the same mutationId', async () => {
		const t = setup([ticket('a', 'TODO', 'V')]);
		await t.engine.load();
		t.engine.joined();
		t.engine.move('a', 'IN_PROGRESS', 0);
		t.engine.disconnected();
		t.sent[0].done({ ok: true, ticket: ticket('a', 'IN_PROGRESS', 'V', { version: 2 }), fromStatus: 'TODO' }); // late: ignored
		expect(t.store.get('a')?.pending).toBe(true);
		t.engine.joined();
		expect(t.sent).toHaveLength(2);
		expect(t.sent[1].payload.mutationId).toBe(t.sent[0].payload.mutationId);
		t.sent[1].done({ ok: true, ticket: ticket('a', 'IN_PROGRESS', 'V', { version: 2 }), fromStatus: 'TODO' });
		expect(t.store.get('a')).toMatchObject({ pending: false, version: 2 });
	});

	it('a queued change that the catch-up shows was already applied is not sent again', async () => {
		const t = setup([ticket('a', 'TODO', 'V')]);
		await t.engine.load();
		t.engine.joined();
		t.engine.move('a', 'IN_PROGRESS', 0);
		t.engine.disconnected();
		// After the reconnect the resume delivers the echo before the join is acknowledged.
		t.engine.receive(
			'ticket:moved',
			{ ticketId: 'a', fromStatus: 'TODO', toStatus: 'IN_PROGRESS', projectId: PROJECT, position: 0, rank: 'V', ticket: ticket('a', 'IN_PROGRESS', 'V', { version: 2 }) },
			meta(6, 'mut-1')
		);
		t.engine.joined();
		expect(t.sent).toHaveLength(1);
		expect(t.store.get('a')).toMatchObject({ pending: false, status: 'IN_PROGRESS' });
	});

	it('a queued change refused after reconnecting is rolled back with a message', async () => {
		const t = setup([ticket('a', 'TODO', 'V')]);
		await t.engine.load();
		t.engine.disconnected();
		t.engine.update('a', { title: 'Mine' });
		t.engine.receive('ticket:updated', ticket('a', 'TODO', 'V', { title: 'Theirs', version: 2 }), meta(6));
		expect(t.store.get('a')?.title).toBe('Mine');
		t.engine.joined();
		t.sent[0].done({
			ok: false,
			error: { code: 'VERSION_CONFLICT', message: 'conflict', details: { ticket: ticket('a', 'TODO', 'V', { title: 'Theirs', version: 2 }) } }
		});
		await settle();
		expect(t.store.get('a')).toMatchObject({ title: 'Theirs', pending: false });
		expect(t.errors).toEqual(['Your edit of "Ticket a" was undone: someone else changed it first.']);
	});

	it('a rate-limited command stays queued and is retried', async () => {
		const t = setup([ticket('a', 'TODO', 'V')]);
		await t.engine.load();
		t.engine.joined();
		t.engine.move('a', 'IN_PROGRESS', 0);
		t.sent[0].done({ ok: false, error: { code: 'RATE_LIMITED', message: 'slow down' } });
		expect(t.store.get('a')?.pending).toBe(true);
		expect(t.scheduled).toHaveLength(1);
		t.scheduled[0]();
		expect(t.sent).toHaveLength(2);
		expect(t.sent[1].payload.mutationId).toBe('mut-1');
	});

	it('pending changes survive a snapshot reload', async () => {
		const t = setup([ticket('a', 'TODO', 'V')]);
		await t.engine.load();
		t.engine.disconnected();
		t.engine.move('a', 'IN_PROGRESS', 0);
		await t.engine.resync({ projectId: PROJECT, reason: 'gap', seq: 9 });
		expect(t.store.get('a')).toMatchObject({ status: 'IN_PROGRESS', pending: true });
	});
});
