// Messages for the person: errors (shown in the `role="alert"` region) and polite
// announcements for screen readers (the `aria-live="polite"` region).
export interface Notice {
	id: number;
	text: string;
}

export class NoticeStore {
	errors = $state.raw<Notice[]>([]);
	announcement = $state('');
	#next = 1;

	error(text: string): void {
		this.errors = [...this.errors.slice(-4), { id: this.#next++, text }];
	}
	dismiss(id: number): void {
		this.errors = this.errors.filter((n) => n.id !== id);
	}
	clearErrors(): void {
		this.errors = [];
	}
	announce(text: string): void {
		// The same text twice in a row must still be read out.
		this.announcement = this.announcement === text ? `${text}\u00a0` : text;
	}
}

export const notices = new NoticeStore();
