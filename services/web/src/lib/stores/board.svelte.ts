// The tickets of the open board as shown: by id, and per column sorted by rank (ties by
// id). The sync engine (lib/sync/engine.ts) decides what each ticket looks like (server
// state plus pending optimistic changes) and hands single tickets to `put` / `remove`.
//
// Cost: `put` and `remove` touch one or two columns: a binary search and one copy of
// those columns' arrays of references (copy-on-write, so Svelte sees a new array and the
// keyed `#each` of that column alone re-diffs). Nothing walks or copies the whole board.
import { compareRankId } from '$lib/rank';
import { STATUSES } from '$lib/status';
import type { Ticket, TicketStatus } from '$lib/protocol';

/** A ticket as displayed: the server's, or with pending optimistic changes applied. */
export interface CardView extends Ticket {
	/** A change of this client's to this ticket is not yet confirmed by the server. */
	pending: boolean;
}

export class Column {
	readonly status: TicketStatus;
	/** The column's cards in rank order; replaced (never mutated) on change. */
	items = $state.raw<CardView[]>([]);
	constructor(status: TicketStatus) {
		this.status = status;
	}
}

function indexFor(items: readonly CardView[], rank: string, id: string): number {
	let lo = 0;
	let hi = items.length;
	while (lo < hi) {
		const mid = (lo + hi) >>> 1;
		const c = items[mid];
		if (compareRankId(c.rank, c.id, rank, id) < 0) lo = mid + 1;
		else hi = mid;
	}
	return lo;
}

export class BoardStore {
	readonly columns: Record<TicketStatus, Column>;
	/** Number of cards on the board. */
	count = $state(0);
	readonly #byId = new Map<string, CardView>();

	constructor() {
		this.columns = Object.fromEntries(STATUSES.map((s) => [s, new Column(s)])) as Record<
			TicketStatus,
			Column
		>;
	}

	get(id: string): CardView | undefined {
		return this.#byId.get(id);
	}

	has(id: string): boolean {
		return this.#byId.has(id);
	}

	/** Every card, in no particular order (tests and snapshots only). */
	all(): CardView[] {
		return [...this.#byId.values()];
	}

	/** Replaces the whole board (a snapshot): the only operation that touches every card. */
	reset(cards: Iterable<CardView>): void {
		this.#byId.clear();
		const grouped = new Map<TicketStatus, CardView[]>(STATUSES.map((s) => [s, []]));
		for (const card of cards) {
			this.#byId.set(card.id, card);
			grouped.get(card.status)!.push(card);
		}
		for (const status of STATUSES) {
			const list = grouped.get(status)!;
			list.sort((a, b) => compareRankId(a.rank, a.id, b.rank, b.id));
			this.columns[status].items = list;
		}
		this.count = this.#byId.size;
	}

	/** Shows `card` (new or changed), placed by its status and rank. */
	put(card: CardView): void {
		const old = this.#byId.get(card.id);
		this.#byId.set(card.id, card);
		if (old && old.status === card.status && old.rank === card.rank) {
			const column = this.columns[card.status];
			const items = column.items.slice();
			const at = indexFor(items, card.rank, card.id);
			if (items[at]?.id === card.id) {
				items[at] = card;
				column.items = items;
				return;
			}
		}
		if (old) this.#take(old);
		const column = this.columns[card.status];
		const items = column.items.slice();
		items.splice(indexFor(items, card.rank, card.id), 0, card);
		column.items = items;
		this.count = this.#byId.size;
	}

	/** Takes the card off the board. */
	remove(id: string): void {
		const old = this.#byId.get(id);
		if (!old) return;
		this.#byId.delete(id);
		this.#take(old);
		this.count = this.#byId.size;
	}

	#take(card: CardView): void {
		const column = this.columns[card.status];
		const at = indexFor(column.items, card.rank, card.id);
		let index = column.items[at]?.id === card.id ? at : -1;
		// A card whose rank was changed in place by a bug elsewhere would not be found by
		// the search; fall back to a scan of its column rather than leave a ghost.
		if (index < 0) index = column.items.findIndex((c) => c.id === card.id);
		if (index < 0) return;
		const items = column.items.slice();
		items.splice(index, 1);
		column.items = items;
	}
}
