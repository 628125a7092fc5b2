// Who else is on the board (the gateways' `room:userJoined` / `room:userLeft`): always
// the whole list, each user once however many tabs they have.
import type { PresenceUpdate, PresentUser } from '$lib/protocol';

export class PresenceStore {
	users = $state.raw<PresentUser[]>([]);
	count = $state(0);
	#heard = false;

	set(payload: PresenceUpdate): void {
		this.#heard = true;
		this.users = payload.users;
		this.count = payload.userCount;
	}
	/** The join ack's count: a first figure until the gateway's list arrives. */
	setCount(count: number): void {
		if (!this.#heard) this.count = count;
	}
	nameOf(userId: string): string | undefined {
		return this.users.find((u) => u.id === userId)?.name;
	}
	clear(): void {
		this.#heard = false;
		this.users = [];
		this.count = 0;
	}
}
