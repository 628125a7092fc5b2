// Who else is on the board (the gateways' `room:userJoined` / `room:userLeft`): always
// the whole list, each user once however many tabs they have.
import type { PresenceUpdate, PresentUser } from '$lib/protocol';

export class PresenceStore {
	users = $state.raw<PresentUser[]>([]);
	count = $state(0);
	#heard = false;
	/** Every name seen on this board, kept after the user left (for messages). */
	readonly #names = new Map<string, string>();

	set(payload: PresenceUpdate): void {
		this.#heard = true;
		for (const user of payload.users) this.#names.set(user.id, user.name);
		this.users = payload.users;
		this.count = payload.userCount;
	}
	/** The join ack's count: a first figure until the gateway's list arrives. */
	setCount(count: number): void {
		if (!this.#heard) this.count = count;
	}
	/** A user's display name, if this board has shown it (presence or hints). */
	nameOf(userId: string): string | undefined {
		return this.#names.get(userId);
	}
	remember(userId: string, name: string): void {
		this.#names.set(userId, name);
	}
	clear(): void {
		this.#heard = false;
		this.users = [];
		this.count = 0;
	}
}
