// The board's columns and the state machine's allowed moves, from the protocol crate's
// one transition table (docs/state-machine.md).
import { TICKET_STATUSES, TRANSITIONS, type TicketStatus } from '$lib/wire';

export const STATUSES: readonly TicketStatus[] = TICKET_STATUSES;

export const STATUS_LABELS: Record<TicketStatus, string> = {
	BACKLOG: 'Backlog',
	TODO: 'To do',
	IN_PROGRESS: 'In progress',
	NEEDS_FEEDBACK: 'Needs feedback',
	READY_TO_RESUME: 'Ready to resume',
	DONE: 'Done'
};

const allowed = new Set(TRANSITIONS.map(([from, to]) => `${from}>${to}`));

/** Whether a ticket in `from` may go to `to`; a reorder inside one column always may. */
export function canMove(from: TicketStatus, to: TicketStatus): boolean {
	return from === to || allowed.has(`${from}>${to}`);
}

/** The columns a ticket in `from` may be dropped in, its own included, in board order. */
export function allowedTargets(from: TicketStatus): TicketStatus[] {
	return STATUSES.filter((to) => canMove(from, to));
}
