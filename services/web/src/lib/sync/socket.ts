// The board's Socket.IO connection: the stock socket.io-client, created only in the
// browser (the caller runs this from onMount), through the page's own origin, with the
// API token in `auth`. It joins the board on every connect with the last applied seq,
// feeds events to the engine and keeps the connection and presence stores current.
import { tick } from 'svelte';
import { io, type Socket } from 'socket.io-client';
import type { ConnectionStore } from '$lib/stores/connection.svelte';
import type { HintStore } from '$lib/stores/hints.svelte';
import type { PresenceStore } from '$lib/stores/presence.svelte';
import type { AckResult, SyncEngine, Transport } from '$lib/sync/engine';
import type {
	ClientToServerEvents,
	ErrorDetail,
	EventMeta,
	HintAction,
	ServerToClientEvents,
	PresenceUpdate,
	Resync,
	Hint
} from '$lib/protocol';

/** Board events: `(data, meta)` with a seq (docs/PROTOCOL.md, server → client). */
export const BOARD_EVENTS = [
	'ticket:created',
	'ticket:updated',
	'ticket:moved',
	'ticket:deleted',
	'column:rebalanced',
	'project:updated',
	'project:deleted',
	'member:added',
	'member:removed'
] as const;

/** The gateway takes at most one hint per this many ms per socket (docs/PROTOCOL.md). */
const HINT_GAP_MS = 210;

/** How long a command may wait for its ack before it is sent again. */
const ACK_TIMEOUT_MS = 10_000;

/**
 * An ack callback that gives up after ACK_TIMEOUT_MS: `done(null)` then, and a late answer
 * is ignored. (socket.io-client's own `timeout()` does the same, but its typing does not
 * apply to the generated event maps, whose ack parameter is optional.)
 */
function withTimeout<A>(done: (ack: A | null) => void): (ack: A) => void {
	let settled = false;
	const timer = setTimeout(() => {
		if (settled) return;
		settled = true;
		done(null);
	}, ACK_TIMEOUT_MS);
	return (ack) => {
		if (settled) return;
		settled = true;
		clearTimeout(timer);
		done(ack);
	};
}

export interface BoardConnectionOptions {
	projectId: string;
	token: string;
	userId: string;
	engine: SyncEngine;
	connection: ConnectionStore;
	presence: PresenceStore;
	hints: HintStore;
	error(text: string): void;
	unauthorized(): void;
}

export interface BoardConnection {
	hint(ticketId: string, action: HintAction): void;
	/** The Engine.IO session id (its prefix names the gateway replica, e.g. `gw1~`). */
	sessionId(): string | undefined;
	close(): void;
}

export function connectBoard(options: BoardConnectionOptions): BoardConnection {
	const { projectId, engine, connection, presence, hints } = options;
	const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io({
		auth: { token: options.token },
		transports: ['websocket'],
		// The library's exponential backoff with jitter (randomizationFactor).
		reconnectionDelay: 500,
		reconnectionDelayMax: 5000,
		randomizationFactor: 0.5
	});
	let closed = false;
	// Hints closer together than the gateway allows are held back and only the newest is
	// sent, so that an "idle" right after a quick drop is not refused and lost.
	let lastHintAt = 0;
	let heldHint: { ticketId: string; action: HintAction } | null = null;
	let hintTimer: ReturnType<typeof setTimeout> | null = null;
	const sendHint = (ticketId: string, action: HintAction) => {
		if (!socket.connected) return;
		lastHintAt = Date.now();
		// With an ack, so that a refusal (rate limit) is not reported as an error event.
		socket.emit('ticket:hint', { projectId, ticketId, action }, () => {});
	};

	const transport: Transport = {
		send(command, done) {
			const answer = withTimeout(done);
			switch (command.event) {
				case 'ticket:create':
					return socket.emit('ticket:create', command.payload, answer);
				case 'ticket:update':
					return socket.emit('ticket:update', command.payload, answer);
				case 'ticket:move':
					return socket.emit('ticket:move', command.payload, answer);
				case 'ticket:delete':
					return socket.emit('ticket:delete', command.payload, answer);
			}
		}
	};
	engine.setTransport(transport);

	socket.on('connect', () => {
		socket.emit(
			'project:join',
			{ projectId, sinceSeq: engine.lastSeq },
			withTimeout((ack) => {
				if (ack === null) {
					// No answer: drop the connection and let the library reconnect.
					socket.disconnect().connect();
					return;
				}
				if (!ack.ok) {
					if (ack.error.code === 'UNAUTHORIZED') options.unauthorized();
					else if (ack.error.code === 'NOT_FOUND')
						options.error('This board does not exist, or you are not one of its members.');
					else options.error(`Could not open the board live: ${ack.error.message}.`);
					return;
				}
				connection.connected(socket.io.engine?.id ?? '');
				presence.setCount(ack.userCount);
				engine.joined();
			})
		);
	});

	socket.on('disconnect', () => {
		engine.disconnected();
		if (closed) return;
		if (typeof navigator !== 'undefined' && navigator.onLine === false) connection.offline();
		else connection.reconnecting(1);
	});
	socket.io.on('reconnect_attempt', (attempt: number) => {
		if (typeof navigator !== 'undefined' && navigator.onLine === false) connection.offline();
		else connection.reconnecting(attempt);
	});
	socket.on('connect_error', (err: Error & { data?: { code?: string } }) => {
		if (err.message === 'Not authorized' || err.data?.code === 'UNAUTHORIZED') {
			options.unauthorized();
		}
	});

	// The benchmark (docs/benchmarks.md) sets `window.__kanbanMeasure = []` to record how
	// long applying each event takes, up to the DOM being updated.
	const measure = (window as unknown as { __kanbanMeasure?: { event: string; ms: number }[] })
		.__kanbanMeasure;
	for (const name of BOARD_EVENTS) {
		socket.on(name, (data: unknown, meta: EventMeta) => {
			if (!measure) return engine.receive(name, data, meta);
			const start = performance.now();
			engine.receive(name, data, meta);
			void tick().then(() => measure.push({ event: name, ms: performance.now() - start }));
		});
	}
	socket.on('project:resync', (payload: Resync) => {
		engine.resync(payload).catch(() => options.error('Could not reload the board.'));
	});
	const onPresence = (payload: PresenceUpdate) => {
		if (payload.projectId === projectId) presence.set(payload);
	};
	socket.on('room:userJoined', onPresence);
	socket.on('room:userLeft', onPresence);
	socket.on('ticket:hint', (hint: Hint) => {
		if (hint.projectId !== projectId || hint.userId === options.userId) return;
		presence.remember(hint.userId, hint.name);
		hints.receive(hint);
	});
	socket.on('error', (error: ErrorDetail) => {
		if (error?.code !== 'RATE_LIMITED') options.error(`The server refused a request: ${error?.message}.`);
	});

	// A browser that knows it is offline closes the socket at once (rather than waiting
	// for a ping timeout), queues changes, and reconnects when the network is back.
	const goOffline = () => {
		connection.offline();
		socket.disconnect();
		engine.disconnected();
	};
	const goOnline = () => {
		if (closed) return;
		connection.reconnecting(0);
		socket.connect();
	};
	window.addEventListener('offline', goOffline);
	window.addEventListener('online', goOnline);
	if (navigator.onLine === false) goOffline();

	return {
		hint(ticketId, action) {
			const wait = lastHintAt + HINT_GAP_MS - Date.now();
			if (wait <= 0 && !hintTimer) return sendHint(ticketId, action);
			heldHint = { ticketId, action };
			hintTimer ??= setTimeout(() => {
				hintTimer = null;
				const held = heldHint;
				heldHint = null;
				if (held && !closed) sendHint(held.ticketId, held.action);
			}, Math.max(0, wait));
		},
		sessionId() {
			return socket.io.engine?.id;
		},
		close() {
			closed = true;
			if (hintTimer) clearTimeout(hintTimer);
			window.removeEventListener('offline', goOffline);
			window.removeEventListener('online', goOnline);
			engine.setTransport(null);
			engine.close();
			socket.disconnect();
		}
	};
}
