// The board's sync engine: applies the server's events in seq order to the server state
// it holds, keeps this client's pending optimistic changes on top of it, sends them as
// commands one after another, and rolls back exactly the one the server refuses.
//
// What is shown for a ticket is always `confirmed` (the server's ticket as last heard)
// with the pending operations on that ticket applied in order. A remote event replaces
// `confirmed` for its ticket, so it never undoes a pending change; a refusal drops that
// operation alone, so remote changes that arrived meanwhile stay. The echo of an own
// command (an event carrying its `mutationId`) settles the operation instead of being
// applied on top of it a second time.
//
// The engine knows nothing of Socket.IO or fetch: the socket layer (lib/sync/socket.ts)
// feeds it events and connection changes, and it talks back through `Transport` and
// `BoardApi`, so its unit tests drive it with fakes.
import type { BoardStore, CardView } from '$lib/stores/board.svelte';
import { compareRankId, rankBetween } from '$lib/rank';
import { canMove, STATUS_LABELS } from '$lib/status';
import type {
	BoardSnapshot,
	ColumnRebalancedPayload,
	CreateTicketCommand,
	DeleteTicketCommand,
	ErrorAck,
	ErrorDetail,
	EventMeta,
	EventsPage,
	MemberChangedPayload,
	MoveAck,
	MoveTicketCommand,
	OkAck,
	Priority,
	Project,
	Resync,
	Ticket,
	TicketAck,
	TicketMovedPayload,
	TicketStatus,
	TicketTransition,
	UpdateTicketCommand
} from '$lib/protocol';

/** A command as the gateway takes it (docs/PROTOCOL.md, client → server). */
export type Command =
	| { event: 'ticket:create'; payload: CreateTicketCommand }
	| { event: 'ticket:update'; payload: UpdateTicketCommand }
	| { event: 'ticket:move'; payload: MoveTicketCommand }
	| { event: 'ticket:delete'; payload: DeleteTicketCommand };
export type AckResult = TicketAck | MoveAck | OkAck | ErrorAck;

/** Sends commands over the socket. `done` gets the ack, or `null` when none came. */
export interface Transport {
	send(command: Command, done: (ack: AckResult | null) => void): void;
}

export interface BoardApi {
	snapshot(projectId: string): Promise<BoardSnapshot>;
	events(projectId: string, since: number): Promise<EventsPage>;
	transitions(ticketId: string): Promise<TicketTransition[]>;
}

export interface EngineHooks {
	/** A message for the person (shown in the alert region). */
	error(text: string): void;
	/** The token was refused: back to sign-in. */
	unauthorized(): void;
	/** The board's name or description changed, or it was deleted (`null`). */
	project?(project: Project | null): void;
	/** Who last hinted at a ticket (for naming who changed it). */
	recentHint?(ticketId: string): { userId: string; name: string } | undefined;
	/** A display name for a user id (presence), if known. */
	nameOf?(userId: string): string | undefined;
	/** The number of unsettled changes changed. */
	pending?(count: number): void;
}

export interface EngineOptions {
	projectId: string;
	userId: string;
	store: BoardStore;
	api: BoardApi;
	hooks: EngineHooks;
	/** Fresh ids for mutations (crypto.randomUUID in the browser). */
	newId?: () => string;
	/** Delay before retrying a command the server could not take (rate limit, outage). */
	retryMs?: number;
	now?: () => number;
	schedule?: (fn: () => void, ms: number) => void;
}

export type TicketFields = Partial<Pick<Ticket, 'title' | 'description' | 'priority' | 'labels'>>;

type OpState = 'queued' | 'sent';
interface OpBase {
	mutationId: string;
	state: OpState;
	/** Bumped on every send, so that a late answer to an earlier send is ignored. */
	attempt: number;
	/** The ticket as shown when the change was made, for the message on rollback. */
	before?: CardView;
}
type Op =
	| (OpBase & {
			kind: 'create';
			tempId: string;
			fields: { title: string; description: string | null; priority: Priority; labels: string[] };
			status: TicketStatus;
			rank: string;
	  })
	| (OpBase & { kind: 'update'; ticketId: string; fields: TicketFields; expectedVersion: number })
	| (OpBase & {
			kind: 'move';
			ticketId: string;
			toStatus: TicketStatus;
			rank: string;
			placement: { afterId?: string; beforeId?: string; position?: number };
			expectedVersion: number;
	  })
	| (OpBase & { kind: 'delete'; ticketId: string; expectedVersion: number });

interface Pending {
	name: string;
	data: unknown;
	meta: EventMeta;
}

const TEMP_PREFIX = 'tmp-';
const CATCH_UP_PAGE = 1000;

function fallbackId(): string {
	return `m-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

export class SyncEngine {
	readonly projectId: string;
	readonly userId: string;
	/** The last seq applied; events are applied only at `lastSeq + 1`. */
	lastSeq = 0;
	readonly #store: BoardStore;
	readonly #api: BoardApi;
	readonly #hooks: EngineHooks;
	readonly #newId: () => string;
	readonly #retryMs: number;
	readonly #now: () => number;
	readonly #schedule: (fn: () => void, ms: number) => void;
	readonly #transport: { current: Transport | null } = { current: null };

	/** The server's tickets as of `lastSeq` (or newer, from acks). */
	readonly #confirmed = new Map<string, Ticket>();
	/** Ids of deleted tickets: a late event about one must not bring it back. */
	readonly #tombstones = new Set<string>();
	/** This client's changes not yet settled, in the order they were made. */
	#ops: Op[] = [];
	/** Events that arrived ahead of `lastSeq + 1`, or while a snapshot or catch-up ran. */
	readonly #ahead = new Map<number, Pending>();
	#loaded = false;
	#busy = false;
	#online = false;
	#inFlight: Op | null = null;
	#closed = false;
	#retryScheduled = false;

	constructor(options: EngineOptions) {
		this.projectId = options.projectId;
		this.userId = options.userId;
		this.#store = options.store;
		this.#api = options.api;
		this.#hooks = options.hooks;
		this.#newId =
			options.newId ??
			(() => (globalThis.crypto?.randomUUID ? globalThis.crypto.randomUUID() : fallbackId()));
		this.#retryMs = options.retryMs ?? 1000;
		this.#now = options.now ?? Date.now;
		this.#schedule = options.schedule ?? ((fn, ms) => void setTimeout(fn, ms));
	}

	// ---------------------------------------------------------------------------------
	// Loading and the connection

	/** Loads the board snapshot (first load, `project:resync`, truncated catch-up). */
	async load(): Promise<void> {
		this.#busy = true;
		try {
			const snapshot = await this.#api.snapshot(this.projectId);
			this.#applySnapshot(snapshot);
		} finally {
			this.#busy = false;
		}
		this.#drain();
	}

	#applySnapshot(snapshot: BoardSnapshot): void {
		// For the benchmark (docs/benchmarks.md): when the snapshot arrived.
		globalThis.performance?.mark?.('kanban:snapshot');
		this.#confirmed.clear();
		for (const ticket of snapshot.tickets) {
			if (!this.#tombstones.has(ticket.id)) this.#confirmed.set(ticket.id, ticket);
		}
		this.lastSeq = snapshot.seq;
		for (const seq of this.#ahead.keys()) if (seq <= snapshot.seq) this.#ahead.delete(seq);
		this.#loaded = true;
		this.#hooks.project?.(snapshot.project);
		const cards: CardView[] = [];
		for (const id of this.#confirmed.keys()) {
			const card = this.#view(id);
			if (card) cards.push(card);
		}
		for (const op of this.#ops) if (op.kind === 'create') cards.push(this.#tempCard(op));
		this.#store.reset(cards);
	}

	/** The socket is connected (again) and its `project:join` was acknowledged. */
	joined(): void {
		this.#online = true;
		this.#flush();
	}

	/** The socket dropped: unanswered commands go back to the queue, to be sent again. */
	disconnected(): void {
		this.#online = false;
		this.#inFlight = null;
		for (const op of this.#ops) if (op.state === 'sent') op.state = 'queued';
	}

	setTransport(transport: Transport | null): void {
		this.#transport.current = transport;
	}

	close(): void {
		this.#closed = true;
		this.#online = false;
	}

	/** Number of changes not yet confirmed by the server. */
	get pendingCount(): number {
		return this.#ops.length;
	}

	// ---------------------------------------------------------------------------------
	// Events from the server

	/** A board event (`data`, `meta`) from the socket or the catch-up. */
	receive(name: string, data: unknown, meta: EventMeta): void {
		if (this.#closed || meta.projectId !== this.projectId) return;
		if (this.#loaded && meta.seq <= this.lastSeq) return;
		if (!this.#loaded || this.#busy || meta.seq !== this.lastSeq + 1) {
			if (!this.#ahead.has(meta.seq)) this.#ahead.set(meta.seq, { name, data, meta });
			if (this.#loaded && !this.#busy) void this.#catchUp();
			return;
		}
		this.#apply(name, data, meta);
		this.#drain();
	}

	/** `project:resync`: history did not reach back far enough; reload the snapshot. */
	async resync(payload: Resync): Promise<void> {
		if (payload.projectId !== this.projectId) return;
		await this.load();
	}

	#drain(): void {
		if (this.#busy || !this.#loaded) return;
		for (;;) {
			const next = this.#ahead.get(this.lastSeq + 1);
			if (!next) break;
			this.#ahead.delete(next.meta.seq);
			this.#apply(next.name, next.data, next.meta);
		}
		for (const seq of this.#ahead.keys()) if (seq <= this.lastSeq) this.#ahead.delete(seq);
		if (this.#ahead.size > 0) void this.#catchUp();
	}

	/** Fills a gap from the durable log, or reloads the snapshot when it cannot. */
	async #catchUp(): Promise<void> {
		if (this.#busy || this.#closed) return;
		this.#busy = true;
		try {
			for (;;) {
				const page = await this.#api.events(this.projectId, this.lastSeq);
				if (page.truncated) {
					this.#applySnapshot(await this.#api.snapshot(this.projectId));
					break;
				}
				let progressed = false;
				for (const envelope of page.events) {
					if (envelope.seq !== this.lastSeq + 1) continue;
					this.#ahead.delete(envelope.seq);
					this.#apply(envelope.event, envelope.data, {
						projectId: envelope.projectId,
						seq: envelope.seq,
						ts: envelope.ts,
						mutationId: envelope.mutationId
					});
					progressed = true;
				}
				if (!progressed || page.events.length < CATCH_UP_PAGE) break;
			}
		} catch (err) {
			if (isUnauthorized(err)) {
				this.#hooks.unauthorized();
				return;
			}
			// The log was unreachable: reload the snapshot a little later (and keep trying).
			this.#hooks.error('Could not fetch the missed changes; retrying.');
			this.#schedule(() => void this.#retryLoad(), this.#retryMs);
			return;
		} finally {
			this.#busy = false;
		}
		this.#drain();
	}

	async #retryLoad(): Promise<void> {
		if (this.#closed) return;
		try {
			await this.load();
		} catch (err) {
			if (isUnauthorized(err)) this.#hooks.unauthorized();
			else this.#schedule(() => void this.#retryLoad(), this.#retryMs * 2);
		}
	}

	#apply(name: string, data: unknown, meta: EventMeta): void {
		this.lastSeq = meta.seq;
		const settled = meta.mutationId ? this.#settleByMutation(meta.mutationId) : undefined;
		switch (name) {
			case 'ticket:created':
			case 'ticket:updated':
				this.#upsert(data as Ticket);
				break;
			case 'ticket:moved':
				this.#upsert((data as TicketMovedPayload).ticket);
				break;
			case 'ticket:deleted': {
				const id = data as string;
				this.#tombstones.add(id);
				this.#confirmed.delete(id);
				this.#refresh(id);
				break;
			}
			case 'column:rebalanced':
				for (const { ticketId, rank } of (data as ColumnRebalancedPayload).ranks) {
					const current = this.#confirmed.get(ticketId);
					if (current) {
						this.#confirmed.set(ticketId, { ...current, rank });
						this.#refresh(ticketId);
					}
				}
				break;
			case 'project:updated':
				this.#hooks.project?.(data as Project);
				break;
			case 'project:deleted':
				this.#hooks.project?.(null);
				this.#hooks.error('This board was deleted.');
				break;
			case 'member:removed':
				if ((data as MemberChangedPayload).userId === this.userId) {
					this.#hooks.error('You were removed from this board.');
				}
				break;
			default:
				break;
		}
		if (settled?.kind === 'create') this.#store.remove(settled.tempId);
	}

	/** The echo of an own command: the operation is settled by the event itself. */
	#settleByMutation(mutationId: string): Op | undefined {
		const index = this.#ops.findIndex((op) => op.mutationId === mutationId);
		if (index < 0) return undefined;
		const [op] = this.#ops.splice(index, 1);
		this.#hooks.pending?.(this.#ops.length);
		if (this.#inFlight === op) this.#inFlight = null;
		if (op.kind !== 'create') this.#refresh(op.ticketId);
		return op;
	}

	/** Newer (or equal) versions replace what is held; older ones arrive late and lose. */
	#upsert(ticket: Ticket): void {
		if (this.#tombstones.has(ticket.id)) return;
		const current = this.#confirmed.get(ticket.id);
		if (!current || ticket.version >= current.version) this.#confirmed.set(ticket.id, ticket);
		this.#refresh(ticket.id);
	}

	// ---------------------------------------------------------------------------------
	// What is shown

	/** The ticket as shown: the server's with this client's pending changes on top. */
	#view(id: string): CardView | undefined {
		let ticket: Ticket | undefined = this.#confirmed.get(id);
		if (!ticket) return undefined;
		let pending = false;
		for (const op of this.#ops) {
			if (op.kind === 'create' || op.ticketId !== id) continue;
			pending = true;
			if (op.kind === 'delete') return undefined;
			if (op.kind === 'move') {
				ticket = { ...ticket, status: op.toStatus, rank: op.rank, version: ticket.version + 1 };
			} else {
				ticket = { ...ticket, ...op.fields, version: ticket.version + 1 };
			}
		}
		return { ...ticket, pending };
	}

	#refresh(id: string): void {
		const card = this.#view(id);
		if (card) this.#store.put(card);
		else this.#store.remove(id);
	}

	#tempCard(op: Extract<Op, { kind: 'create' }>): CardView {
		const now = new Date(this.#now()).toISOString();
		return {
			id: op.tempId,
			projectId: this.projectId,
			title: op.fields.title,
			description: op.fields.description,
			status: op.status,
			priority: op.fields.priority,
			labels: op.fields.labels,
			rank: op.rank,
			position: this.#store.columns[op.status].items.length,
			version: 0,
			createdAt: now,
			updatedAt: now,
			pending: true
		};
	}

	// ---------------------------------------------------------------------------------
	// Commands (optimistic)

	/** Creates a ticket at the end of `status`; shown at once, pending. */
	create(
		fields: { title: string; description?: string | null; priority?: Priority; labels?: string[] },
		status: TicketStatus = 'BACKLOG'
	): string {
		const mutationId = this.#newId();
		const items = this.#store.columns[status].items;
		const last = items[items.length - 1];
		const op: Extract<Op, { kind: 'create' }> = {
			kind: 'create',
			mutationId,
			state: 'queued',
			attempt: 0,
			tempId: `${TEMP_PREFIX}${mutationId}`,
			fields: {
				title: fields.title,
				description: fields.description ?? null,
				priority: fields.priority ?? 'MEDIUM',
				labels: fields.labels ?? []
			},
			status,
			rank: rankBetween(last ? last.rank : null, null)
		};
		this.#addOp(op);
		this.#store.put(this.#tempCard(op));
		this.#flush();
		return op.tempId;
	}

	/** Changes title, description, priority or labels. */
	update(id: string, fields: TicketFields): boolean {
		const card = this.#writable(id);
		if (!card) return false;
		this.#addOp({
			kind: 'update',
			mutationId: this.#newId(),
			state: 'queued',
			attempt: 0,
			ticketId: id,
			fields,
			expectedVersion: card.version,
			before: card
		});
		this.#refresh(id);
		this.#flush();
		return true;
	}

	/**
	 * Moves a card to `index` of column `toStatus` (counted without the card). Refused
	 * here, before anything is sent, when the state machine does not allow it.
	 */
	move(id: string, toStatus: TicketStatus, index: number): boolean {
		const card = this.#writable(id);
		if (!card) return false;
		if (!canMove(card.status, toStatus)) {
			this.#hooks.error(
				`A card in ${STATUS_LABELS[card.status]} cannot go to ${STATUS_LABELS[toStatus]}.`
			);
			return false;
		}
		const others = this.#store.columns[toStatus].items.filter((c) => c.id !== id);
		const at = Math.max(0, Math.min(index, others.length));
		const above = others[at - 1];
		const below = others[at];
		if (toStatus === card.status) {
			const current = this.#store.columns[toStatus].items.findIndex((c) => c.id === id);
			if (current === at) return false; // dropped where it was
		}
		let rank: string;
		try {
			rank = rankBetween(above ? above.rank : null, below ? below.rank : null);
		} catch {
			rank = above ? above.rank : below ? below.rank : 'V';
		}
		this.#addOp({
			kind: 'move',
			mutationId: this.#newId(),
			state: 'queued',
			attempt: 0,
			ticketId: id,
			toStatus,
			rank,
			placement: this.#placement(others, at, toStatus),
			expectedVersion: card.version,
			before: card
		});
		this.#refresh(id);
		this.#flush();
		return true;
	}

	/** Deletes a ticket. */
	remove(id: string): boolean {
		const card = this.#writable(id);
		if (!card) return false;
		this.#addOp({
			kind: 'delete',
			mutationId: this.#newId(),
			state: 'queued',
			attempt: 0,
			ticketId: id,
			expectedVersion: card.version,
			before: card
		});
		this.#refresh(id);
		this.#flush();
		return true;
	}

	#addOp(op: Op): void {
		this.#ops.push(op);
		this.#hooks.pending?.(this.#ops.length);
	}

	#writable(id: string): CardView | undefined {
		if (id.startsWith(TEMP_PREFIX)) {
			this.#hooks.error('This card is still being saved; try again in a moment.');
			return undefined;
		}
		const card = this.#store.get(id);
		if (!card) this.#hooks.error('That card is no longer on the board.');
		return card;
	}

	/**
	 * Where the server should put the card: next to a neighbour that the server already
	 * has in that column (not one that is only there through a pending change of ours), or
	 * by index when there is none.
	 */
	#placement(
		others: CardView[],
		at: number,
		toStatus: TicketStatus
	): { afterId?: string; beforeId?: string; position?: number } {
		const settled = (c: CardView | undefined) =>
			c !== undefined && !c.pending && this.#confirmed.get(c.id)?.status === toStatus;
		if (at > 0 && settled(others[at - 1])) return { afterId: others[at - 1].id };
		if (at < others.length && settled(others[at])) return { beforeId: others[at].id };
		let position = 0;
		for (let i = 0; i < at; i++) if (settled(others[i])) position++;
		return { position };
	}

	// ---------------------------------------------------------------------------------
	// Sending, acks and rollback

	#flush(): void {
		if (!this.#online || this.#inFlight || this.#closed) return;
		const transport = this.#transport.current;
		if (!transport) return;
		const op = this.#ops.find((o) => o.state === 'queued');
		if (!op) return;
		op.state = 'sent';
		op.attempt += 1;
		const attempt = op.attempt;
		this.#inFlight = op;
		transport.send(this.#command(op), (ack) => {
			if (op.attempt !== attempt || op.state !== 'sent') return; // superseded by a re-send
			if (this.#inFlight === op) this.#inFlight = null;
			this.#answer(op, ack);
			this.#flush();
		});
	}

	#command(op: Op): Command {
		switch (op.kind) {
			case 'create':
				return {
					event: 'ticket:create',
					payload: {
						projectId: this.projectId,
						ticket: {
							title: op.fields.title,
							...(op.fields.description ? { description: op.fields.description } : {}),
							priority: op.fields.priority,
							labels: op.fields.labels,
							status: op.status
						},
						mutationId: op.mutationId
					}
				};
			case 'update':
				return {
					event: 'ticket:update',
					payload: {
						ticket: { id: op.ticketId, ...op.fields },
						expectedVersion: op.expectedVersion,
						mutationId: op.mutationId
					}
				};
			case 'move':
				return {
					event: 'ticket:move',
					payload: {
						ticketId: op.ticketId,
						toStatus: op.toStatus,
						...op.placement,
						expectedVersion: op.expectedVersion,
						mutationId: op.mutationId
					}
				};
			case 'delete':
				return {
					event: 'ticket:delete',
					payload: { ticketId: op.ticketId, expectedVersion: op.expectedVersion, mutationId: op.mutationId }
				};
		}
	}

	#answer(op: Op, ack: AckResult | null): void {
		if (!this.#ops.includes(op)) return; // settled by its echo meanwhile
		if (ack === null) {
			// No answer in time: send it again (the mutationId makes that harmless).
			op.state = 'queued';
			this.#retryLater();
			return;
		}
		if (ack.ok) {
			this.#ops.splice(this.#ops.indexOf(op), 1);
			this.#hooks.pending?.(this.#ops.length);
			this.#confirm(op, ack);
			return;
		}
		const { code } = ack.error;
		if (code === 'RATE_LIMITED' || code === 'UNAVAILABLE' || code === 'INTERNAL') {
			op.state = 'queued';
			this.#retryLater();
			return;
		}
		if (code === 'UNAUTHORIZED') {
			op.state = 'queued';
			this.#hooks.unauthorized();
			return;
		}
		if (code === 'VALIDATION' && op.kind === 'move' && !('position' in op.placement)) {
			// The neighbour it was placed next to left that column meanwhile: place it by
			// index among what the server has there instead (a failed request does not use
			// up its mutationId, so the same one is sent).
			op.placement = { position: this.#serverIndex(op.toStatus, op.rank, op.ticketId) };
			op.state = 'queued';
			return;
		}
		this.#ops.splice(this.#ops.indexOf(op), 1);
		this.#hooks.pending?.(this.#ops.length);
		void this.#rollBack(op, ack.error);
	}

	/** How many of the server's tickets in `status` sort before `rank` (the card excluded). */
	#serverIndex(status: TicketStatus, rank: string, id: string): number {
		let index = 0;
		for (const t of this.#confirmed.values()) {
			if (t.status === status && t.id !== id && compareRankId(t.rank, t.id, rank, id) < 0) index++;
		}
		return index;
	}

	#retryLater(): void {
		if (this.#retryScheduled) return;
		this.#retryScheduled = true;
		this.#schedule(() => {
			this.#retryScheduled = false;
			this.#flush();
		}, this.#retryMs);
	}

	/** The server accepted: its answer is the ticket's newest state. */
	#confirm(op: Op, ack: TicketAck | MoveAck | OkAck): void {
		switch (op.kind) {
			case 'create':
			case 'update': {
				if (op.kind === 'create') this.#store.remove(op.tempId);
				const { ok: _ok, ...ticket } = ack as TicketAck;
				this.#upsert(ticket);
				break;
			}
			case 'move': {
				const moved = (ack as MoveAck).ticket;
				if (moved) this.#upsert(moved);
				else this.#refresh(op.ticketId);
				break;
			}
			case 'delete':
				this.#tombstones.add(op.ticketId);
				this.#confirmed.delete(op.ticketId);
				this.#refresh(op.ticketId);
				break;
		}
	}

	/** The server refused: undo exactly this change and say why, in words. */
	async #rollBack(op: Op, error: ErrorDetail): Promise<void> {
		if (op.kind === 'create') {
			this.#store.remove(op.tempId);
			this.#hooks.error(`"${op.fields.title}" could not be created: ${error.message}.`);
			return;
		}
		const id = op.ticketId;
		const current = conflictTicket(error);
		if (current) {
			this.#upsert(current);
		} else if (error.code === 'NOT_FOUND') {
			this.#tombstones.add(id);
			this.#confirmed.delete(id);
		}
		this.#refresh(id);
		const title = op.before?.title ?? 'the card';
		const what =
			op.kind === 'move' ? 'move' : op.kind === 'update' ? 'edit' : 'deletion';
		if (error.code === 'VERSION_CONFLICT') {
			const who = await this.#whoChanged(id, op.before?.status, current);
			const change =
				current && op.before && current.status !== op.before.status
					? `moved it to ${STATUS_LABELS[current.status]}`
					: 'changed it';
			this.#hooks.error(`Your ${what} of "${title}" was undone: ${who} ${change} first.`);
		} else if (error.code === 'NOT_FOUND') {
			this.#hooks.error(`Your ${what} of "${title}" was undone: the card was deleted.`);
		} else if (error.code === 'INVALID_TRANSITION') {
			this.#hooks.error(`Your ${what} of "${title}" was refused: ${error.message}.`);
		} else if (error.code === 'FORBIDDEN') {
			this.#hooks.error(`Your ${what} of "${title}" was refused: your role may not change cards.`);
		} else {
			this.#hooks.error(`Your ${what} of "${title}" was undone: ${error.message}.`);
		}
	}

	/** A name for whoever changed the ticket: a fresh hint, else its last transition. */
	async #whoChanged(
		id: string,
		before: TicketStatus | undefined,
		current: Ticket | undefined
	): Promise<string> {
		const hint = this.#hooks.recentHint?.(id);
		if (hint && hint.userId !== this.userId) return hint.name;
		if (current && before && current.status !== before) {
			try {
				const history = await this.#api.transitions(id);
				const last = history[history.length - 1];
				if (last && last.toStatus === current.status && last.triggeredBy !== this.userId) {
					return this.#hooks.nameOf?.(last.triggeredBy) ?? last.triggeredBy;
				}
			} catch {
				// The name is a courtesy; the message goes out without it.
			}
		}
		return 'someone else';
	}
}

/** `VERSION_CONFLICT` carries the ticket as it is now in `details.ticket`. */
function conflictTicket(error: ErrorDetail): Ticket | undefined {
	if (error.code !== 'VERSION_CONFLICT') return undefined;
	const details = error.details as { ticket?: Ticket } | null | undefined;
	return details?.ticket ?? undefined;
}

/** An API failure carrying the server's error code. */
export class ApiError extends Error {
	readonly status: number;
	readonly code: string;
	constructor(status: number, code: string, message: string) {
		super(message);
		this.status = status;
		this.code = code;
	}
}

export function isUnauthorized(err: unknown): boolean {
	return err instanceof ApiError && err.status === 401;
}
