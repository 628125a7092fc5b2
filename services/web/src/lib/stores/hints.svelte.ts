// Cards someone else is dragging or editing (`ticket:hint`), dropped at their `expiresAt`.
import { SvelteMap } from 'svelte/reactivity';
import type { Hint } from '$lib/protocol';

export class HintStore {
	readonly byTicket = new SvelteMap<string, Hint>();
	/** The last hint seen per ticket, kept after expiry: who touched it lately. */
	readonly #recent = new Map<string, Hint>();
	readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();
	readonly #now: () => number;

	constructor(now: () => number = Date.now) {
		this.#now = now;
	}

	receive(hint: Hint): void {
		const timer = this.#timers.get(hint.ticketId);
		if (timer) clearTimeout(timer);
		this.#timers.delete(hint.ticketId);
		if (hint.action === 'idle') {
			if (this.byTicket.get(hint.ticketId)?.userId === hint.userId) this.byTicket.delete(hint.ticketId);
			return;
		}
		this.#recent.set(hint.ticketId, hint);
		this.byTicket.set(hint.ticketId, hint);
		const ttl = Math.max(0, hint.expiresAt - this.#now());
		this.#timers.set(
			hint.ticketId,
			setTimeout(() => {
				this.#timers.delete(hint.ticketId);
				if (this.byTicket.get(hint.ticketId) === hint) this.byTicket.delete(hint.ticketId);
			}, ttl)
		);
	}

	/** Who hinted at this ticket within the last `withinMs`, if anyone. */
	recentBy(ticketId: string, withinMs = 15_000): Hint | undefined {
		const hint = this.#recent.get(ticketId);
		return hint && hint.expiresAt - 5_000 >= this.#now() - withinMs ? hint : undefined;
	}

	clear(): void {
		for (const timer of this.#timers.values()) clearTimeout(timer);
		this.#timers.clear();
		this.byTicket.clear();
	}
}
