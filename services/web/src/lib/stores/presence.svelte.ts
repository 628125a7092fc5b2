// Who else is on the board (the gateways' `room:userJoined` / `room:userLeft`): always
// the whole list, each user once however many tabs they have.
import type { PresencePayload, PresenceUser } from '$lib/wire';

export class PresenceStore {
	users = $state.raw<PresenceUser[]>([]);
	count = $state(0);

	set(payload: PresencePayload): void {
		this.users = payload.users;
		this.count = payload.userCount;
	}
	setCount(count: number): void {
		this.count = count;
	}
	nameOf(userId: string): string | undefined {
		return this.users.find((u) => u.id === userId)?.name;
	}
	clear(): void {
		this.users = [];
		this.count = 0;
	}
}
